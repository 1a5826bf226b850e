"""Channel masks, mask distance and EB detection on hand-made inputs (REFERENCE.md section 4)."""
import pytest
import torch

from methods.pruning.eb import EBDetector, channel_mask, detect_eb, distance_matrix, layer_masks, mask_distance
from methods.models import build_model


def test_channel_mask_by_hand():
    g = torch.tensor([0.5, 0.1, 0.3, 0.2, 0.4])
    # N=5, p=0.4: threshold = sorted[int(2)] = 0.3, keep |gamma| > 0.3
    assert channel_mask(g, 0.4).tolist() == [True, False, False, False, True]
    # p=0.1: threshold = sorted[0] = 0.1
    assert channel_mask(g, 0.1).tolist() == [True, False, True, True, True]
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        channel_mask(g, 1.0)


def test_mask_distance_by_hand():
    a = torch.tensor([1, 1, 0, 0, 1], dtype=torch.bool)
    b = torch.tensor([1, 0, 0, 1, 1], dtype=torch.bool)
    assert mask_distance(a, b) == pytest.approx(2 / 5)
    m = distance_matrix(torch.stack([a, b, ~a]))
    assert torch.allclose(m, torch.tensor([[0, 0.4, 1], [0.4, 0, 0.6], [1, 0.6, 0]]))


def _history(flips: list[list[int]], n: int = 20) -> torch.Tensor:
    """Mask history: m_0 all ones, m_t = m_{t-1} with the listed positions toggled."""
    m = torch.ones(n, dtype=torch.bool)
    rows = [m.clone()]
    for f in flips:
        m = m.clone()
        m[f] = ~m[f]
        rows.append(m)
    return torch.stack(rows)


def test_paper_rule_waits_for_five_small_consecutive_distances():
    # consecutive distances 0.5, 0.3, 0.2, then 0 forever (N=20)
    h = _history([list(range(10)), list(range(10, 16)), [16, 17, 18, 19]] + [[]] * 6)
    assert detect_eb(h, "paper") == 8  # FIFO (d4..d8) is the first all-zero window
    assert detect_eb(h, "official") == 7  # m7 equals m3..m6


def test_rules_differ_on_slow_drift_and_on_the_boundary():
    drift = _history([[i] for i in range(12)])  # each epoch 1 of 20 channels flips: d = 0.05
    assert detect_eb(drift, "paper") == 5  # every consecutive distance < 0.1
    assert detect_eb(drift, "official") is None  # m_t vs m_{t-4} = 0.2 > 0.1
    boundary = _history([[0, 1]] + [[]] * 6)  # d1 = 0.1 exactly, then 0
    assert detect_eb(boundary, "official") == 4  # <= 0.1 against m_0
    assert detect_eb(boundary, "paper") == 6  # strict < 0.1: the window must drop d1


def test_never_emerges_and_unknown_rule():
    h = _history([list(range(0, 20, 2)), list(range(0, 20, 2))] * 4)
    assert detect_eb(h) is None
    with pytest.raises(ValueError, match="'paper' or 'official'"):
        detect_eb(h, "strict")


def test_empty_layer_keeps_its_largest_channel():
    m = build_model("vgg16", 10, width=0.125)
    sizes = [b.num_features for b in m.modules() if isinstance(b, torch.nn.BatchNorm2d)]
    g = torch.rand(sum(sizes), generator=torch.Generator().manual_seed(0)) + 1
    g[:8] = torch.linspace(0.01, 0.02, 8)  # first layer far below everyone else
    masks = layer_masks(m, channel_mask(g, 0.05), g)
    assert masks[0].sum() == 1 and masks[0][7]
    assert sum(int(x.sum()) for x in masks) == int(channel_mask(g, 0.05).sum()) + 1


@pytest.mark.parametrize("rule", ["paper", "official"])
def test_streaming_detector_equals_detect_eb_on_every_prefix(rule):
    """EBDetector (what a search runs each epoch) gives detect_eb of the history so far, on the
    worked histories above and on random drifts that emerge at varied epochs."""
    hists = [_history([list(range(10)), list(range(10, 16)), [16, 17, 18, 19]] + [[]] * 6),
             _history([[i] for i in range(12)]), _history([[0, 1]] + [[]] * 6)]
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        flips = [torch.randperm(20, generator=g)[:int(torch.randint(0, 4, (1,), generator=g))].tolist() for _ in range(25)]
        hists.append(_history(flips))
    emerged = set()
    for h in hists:
        det = EBDetector(rule)
        for t in range(len(h)):
            assert det.push(h[t]) == detect_eb(h[:t + 1], rule)
        emerged.add(det.epoch)
    assert len(emerged) > 4  # the random histories cover early, late and no emergence
    with pytest.raises(ValueError, match="'paper' or 'official'"):
        EBDetector("strict")
