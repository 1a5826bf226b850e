"""Channel masks from BN scaling factors, mask distance and Early-Bird detection.

Sources: You et al. 2020 (EB) Algorithm 1 and section 3; EB official ``main.py`` class
``EarlyBird``; Liu et al. 2017 (network slimming). REFERENCE.md section 4.
"""
from __future__ import annotations

import torch
from torch import nn

from methods.base.inputs import check_ratio


def bn_layers(model: nn.Module) -> list[nn.BatchNorm2d]:
    """Every ``BatchNorm2d`` of ``model`` in module order (the order of the global mask)."""
    return [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]


def bn_gammas(model: nn.Module) -> torch.Tensor:
    """|gamma| of all BatchNorm2d layers concatenated in module order: float32 ``(N,)`` on the CPU."""
    return torch.cat([m.weight.detach().abs().float().cpu().flatten() for m in bn_layers(model)])


def channel_mask(gammas: torch.Tensor, ratio: float) -> torch.Tensor:
    """Global network-slimming mask at pruning ratio ``ratio`` (fraction of BN channels removed).

    ``gammas``: |gamma| ``(N,)``. threshold = sorted(|gamma|)[int(N * ratio)]; a channel is kept
    iff |gamma| > threshold (EB ``main.py``, strict). Returns bool ``(N,)``, True = kept.

    Raises:
        ValueError: ``ratio`` outside (0, 1).
    """
    check_ratio(ratio)
    n = gammas.numel()
    threshold = gammas.sort().values[int(n * ratio)]
    return gammas > threshold


def masks_from_gammas(gammas: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mask history ``(T, N)`` bool from a |gamma| history ``(T, N)`` (one ``channel_mask`` per row)."""
    return torch.stack([channel_mask(g, ratio) for g in gammas])


def mask_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Normalised Hamming distance of two masks ``(N,)``: differing positions / N, in [0, 1].

    One flattened mask per network (EB issue #2).
    """
    if a.shape != b.shape:
        raise ValueError(f"masks differ in length: {tuple(a.shape)} vs {tuple(b.shape)}")
    return int((a != b).sum()) / a.numel()  # exact count / N in double: 2/20 is 0.1, not 0.1000000015


def distance_matrix(masks: torch.Tensor) -> torch.Tensor:
    """Pairwise mask distances of a history ``(T, N)`` bool -> float32 ``(T, T)`` (EB Figure 3)."""
    m = masks.float()
    return (m @ (1 - m).T + (1 - m) @ m.T) / masks.shape[1]


def detect_eb(masks: torch.Tensor, rule: str = "paper", fifo: int = 5, eps: float = 0.1) -> int | None:
    """Epoch at which the EB ticket is drawn from a mask history, or None if it never emerges.

    ``masks``: bool ``(T, N)``, row t = mask after t epochs (row 0 = initialisation).
    Returns the number of completed epochs whose weights form the ticket.

    * ``"paper"`` (EB Algorithm 1, default): after each epoch t >= 1 push
      dist(m_t, m_{t-1}) into a FIFO of length ``fifo``; draw at the first t where the FIFO is
      full and max(FIFO) < ``eps``.
    * ``"official"`` (EB ``main.py`` ``EarlyBird.early_bird_emerge``): FIFO of the last
      ``fifo`` masks taken at the start of each epoch (m_0 = init); draw at the first t where
      dist(m_t, m_{t-k}) <= ``eps`` for every k = 1..fifo-1. The official checkpoint then says
      epoch t + 1 (the retrain scripts start there; REFERENCE.md section 4).

    Raises:
        ValueError: unknown rule.
    """
    if rule not in ("paper", "official"):
        raise ValueError(f"unknown EB detection rule {rule!r}; choose 'paper' or 'official'")
    n = masks.shape[1]
    if rule == "paper":
        d = ((masks[1:] != masks[:-1]).sum(1).double() / n).tolist()  # d[t-1] = dist(m_t, m_{t-1})
        for t in range(fifo, masks.shape[0]):
            if max(d[t - fifo:t]) < eps:
                return t
        return None
    for t in range(fifo - 1, masks.shape[0]):
        if all(mask_distance(masks[t], masks[t - k]) <= eps for k in range(1, fifo)):
            return t
    return None


class EBDetector:
    """``detect_eb`` one epoch at a time, as a search runs: ``push`` the mask after each epoch
    (the first push is the initialisation, m_0); ``epoch`` is ``detect_eb`` of the history pushed
    so far. Each push costs at most ``fifo - 1`` mask distances, not a pass over the history.

    Raises:
        ValueError: unknown rule.
    """

    def __init__(self, rule: str = "paper", fifo: int = 5, eps: float = 0.1):
        if rule not in ("paper", "official"):
            raise ValueError(f"unknown EB detection rule {rule!r}; choose 'paper' or 'official'")
        self.rule, self.fifo, self.eps = rule, fifo, eps
        self.window: list[torch.Tensor] = []  # the last ``fifo`` masks
        self.dists: list[float] = []  # paper: the last ``fifo`` of dist(m_t, m_{t-1})
        self.t = -1
        self.epoch: int | None = None

    def push(self, mask: torch.Tensor) -> int | None:
        """Add m_t (bool ``(N,)``); returns ``epoch`` (the first emergence so far, or None)."""
        self.t += 1
        if self.epoch is None:
            if self.rule == "paper":
                if self.window:
                    self.dists = [*self.dists, mask_distance(mask, self.window[-1])][-self.fifo:]
                if len(self.dists) == self.fifo and max(self.dists) < self.eps:
                    self.epoch = self.t
            elif self.t >= self.fifo - 1 and all(mask_distance(mask, m) <= self.eps for m in self.window[-(self.fifo - 1):]):
                self.epoch = self.t
            self.window = [*self.window, mask][-self.fifo:]
        return self.epoch


def split_mask(model: nn.Module, mask: torch.Tensor) -> list[torch.Tensor]:
    """A global mask ``(N,)`` as one bool mask per BatchNorm2d of ``model``, as the criterion
    left them (a layer may keep nothing).

    Raises:
        ValueError: the mask's length is not the model's number of BN channels.
    """
    sizes = [m.num_features for m in bn_layers(model)]
    if sum(sizes) != mask.numel():
        raise ValueError(f"mask has {mask.numel()} entries but the model has {sum(sizes)} BN channels")
    return [m.clone() for m in mask.split(sizes)]


def layer_masks(model: nn.Module, mask: torch.Tensor, gammas: torch.Tensor | None = None,
                survivor: str = "largest") -> list[torch.Tensor]:
    """Split a global mask ``(N,)`` into one bool mask per BatchNorm2d of ``model``.

    A layer with no surviving channel keeps one, so the pruned architecture stays buildable:
    ``survivor="largest"`` its largest-|gamma| channel, ``"first"`` channel 0, as EB's
    ``resprune.py`` does (which then zeroes that channel's gamma and beta: ``methods.pruning.channels``);
    ``vggprune.py`` breaks here (EB issue #1). REFERENCE.md section 4. ``gammas`` defaults to
    the model's current |gamma|. ``emptied_layers`` names the layers this fills.

    Raises:
        ValueError: the mask's length is not the model's number of BN channels; unknown ``survivor``.
    """
    if survivor not in ("largest", "first"):
        raise ValueError(f"survivor={survivor!r}: choose 'largest' or 'first'")
    gammas = bn_gammas(model) if gammas is None else gammas
    out = split_mask(model, mask)
    for m, g in zip(out, gammas.split([m.numel() for m in out])):
        if not m.any():
            m[g.argmax() if survivor == "largest" else 0] = True
    return out


def emptied_layers(model: nn.Module, mask: torch.Tensor) -> tuple[int, ...]:
    """Indices (module order) of the BatchNorm2d layers in which the global mask ``(N,)`` keeps no channel."""
    return tuple(i for i, m in enumerate(split_mask(model, mask)) if not m.any())
