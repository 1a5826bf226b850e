"""The claims' rules (methods/base/claims.py) on hand-made numbers and the papers' tables; the claims
page on a hand-made results tree; the `claims` target's dry run (issue 17)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from methods.base import claims as C
from methods.runs.cells import figure3_searches, load_tables, table1_cells, table2_cells
from methods.base.config import ROOT, load_scale
from methods.pruning.eb import masks_from_gammas
from methods.metrics.flops import complexity
from methods.models import build_model

CFG = C.load_claims()
FL = CFG["min_tolerance_pp"]


def test_stat_spreads_are_range_for_eb_and_std_for_rt():
    assert C.Stat.of([84.0, 85.0, 86.0]) == C.Stat(85.0, 2.0, 3)
    assert C.Stat.of([84.0, 86.0], "std").spread == pytest.approx(2 ** 0.5)
    assert C.Stat.of([None]) is None and C.Stat.of([70.0]).n == 1


def _search(t, steps=196, decay=80, dist=0.05):
    return {"name": "s", "eb": {p: t for p in (0.3, 0.5, 0.7)}, "steps_per_epoch": steps, "first_decay": decay,
            "dist_after": {p: dist for p in (0.3, 0.5, 0.7)}}


def test_eb_early_is_stated_in_steps_and_phases_so_it_means_the_same_at_every_scale():
    c = CFG["by_id"]["EB-1"]
    assert C.eb_early("EB-1", [_search(15)], c).verdict == C.HOLDS                       # paper: 15 of 160, decay at 80
    # mid: drawn at 12 of 40 (30 % of the epochs, 3x the paper's fraction) but 2,352 steps, before the decay at 20
    assert C.eb_early("EB-1", [_search(12, 196, 20)], c).verdict == C.HOLDS
    late = C.eb_early("EB-1", [_search(22, 196, 20)], c)                                   # after the first decay
    assert late.verdict == C.FAILS and "first decay at 20" in late.reason
    assert C.eb_early("EB-1", [_search(30, 196, 80)], c).verdict == C.FAILS               # 5,880 steps > 5,000
    assert C.eb_early("EB-1", [_search(12, 196, 20, dist=0.2)], c).verdict == C.FAILS     # masks move on (Figure 3)
    assert C.eb_early("EB-1", [_search(None)], c).verdict == C.FAILS                      # never emerges
    assert C.eb_early("EB-1", [], c).verdict == C.NOT_JUDGED


def test_pair_rules_and_their_tolerance():
    a, b = C.Stat(84.0, 0.2, 2), C.Stat(84.4, 0.3, 2)
    row = C.pair_row("x", a, b, FL, 2)
    assert row["ok"] is True and row["tol"] == 0.5 and row["diff"] == pytest.approx(-0.4)      # floor applies
    assert C.pair_row("x", C.Stat(83.0, 0.2, 2), b, FL, 2)["ok"] is False                      # 1.4 pp below
    assert C.pair_row("x", C.Stat(83.0, 1.6, 2), b, FL, 2)["ok"] is True                       # within our own spread
    one = C.pair_row("x", C.Stat(84.0, 0.0, 1), b, FL, 2)
    assert one["ok"] is None and one["why"].endswith("(have 1); list more seeds in the scale")
    cut = C.pair_row("x", C.Stat(84.0, 0.0, 1, left_out=1), b, FL, 2)  # the second seed's ticket was disconnected
    assert cut["ok"] is None and cut["why"].endswith("(have 1): 1 disconnected ticket(s) left out; train more seeds")
    assert C.pair_row("x", None, b, FL, 2)["ok"] is None
    assert C.pair_row("x", a, b, FL, 2, "agree")["ok"] is True
    assert C.pair_row("x", C.Stat(85.0, 0.1, 2), a, FL, 2, "beats")["ok"] is True
    assert C.pair_row("x", C.Stat(84.3, 0.1, 2), a, FL, 2, "beats")["ok"] is False
    assert C.pair_row("x", C.Stat(84.3, 0.1, 2), a, FL, 2, "not_beats")["ok"] is True
    v = C.compare("EB-2", [row, one])
    assert v.verdict == C.HOLDS and "1 not judged" in v.reason
    assert C.compare("EB-2", [one]).verdict == C.NOT_JUDGED


def test_cost_rule_is_a_strict_ratio_below_one():
    assert C.cost_row("x", 200.0, 547.0)["ok"] is True
    assert C.cost_row("x", 547.0, 547.0)["ok"] is False
    assert C.cost_row("x", None, 547.0)["ok"] is None


def test_learned_threshold_is_three_quarters_from_chance_to_the_papers_dense():
    assert C.learned_threshold("cifar10", CFG) == pytest.approx(10 + 0.75 * 83.6)
    assert C.learned_threshold("cifar100", CFG) == pytest.approx(1 + 0.75 * 71)
    why = C.not_learned({"vgg16-cifar10-s1": ("cifar10", 14.0)}, CFG)
    assert "14.0 % < 72.7 %" in why
    assert C.not_learned({"vgg16-cifar10-s1": ("cifar10", 83.0)}, CFG) is None


def test_the_papers_own_numbers_under_the_same_rules():
    """Every claim holds on the papers' tables, except where the claim's note says the table does not support it."""
    v = C.paper_verdicts(CFG)
    assert set(v) == set(CFG["by_id"])
    for cid, verdict in v.items():
        note = CFG["by_id"][cid].get("paper_note")
        if note is None:
            assert verdict.verdict == C.HOLDS, (cid, verdict.reason)
        else:
            assert verdict.verdict == C.FAILS, cid
            for r in verdict.rows:  # every failing setting is named in the note, with its difference
                if r["ok"] is False:
                    m, ds, p = re.match(r"(\w+) (cifar\d+) p=([\d.]+)", r["what"]).groups()
                    assert f"{r['diff']:.2f}" in note, (cid, r["what"], note)
    assert len(v["RT-2"].rows) == 24 and len(v["EB-3"].rows) == 16


# ---- a hand-made results tree: tiny scale, two seeds, Table 1 + Table 2 (EB rows) + Figure 5 ----

SPEC = {
    "table1": {"models": ["vgg16"], "datasets": ["cifar10"], "schedules": ["0-100", "80-120"], "draws": ["10", "20", "final"],
               "ratio": 0.5, "lr": 0.1, "runs": 3, "retrain_schedule": "80-120", "init": "fresh"},
    "table2": {"models": ["vgg16"], "datasets": ["cifar10"], "ratios": [0.5], "schedule": "80-120", "lr": 0.1, "runs": 3,
               "rows": {"eb_reinit": {"prune": "bn", "draw": "eb", "init": "fresh"},
                        "eb_train": {"prune": "bn", "draw": "eb", "init": "continue"}}, "lowp_accuracy": "best_acc"},
    "figure5": {"models": ["vgg16"], "datasets": ["cifar10"], "schedule": "80-120", "lr": 0.1, "ratios": [0.3, 0.5, 0.7],
                "runs": 3, "every": 10, "retrain": "full"},
}
#: retrain accuracies per (schedule, draw or table 2 row), seeds 1 and 2: EB-2 and EB-3 hold, EB-4 does not
ACC = {("80-120", "10"): (84.0, 84.4), ("80-120", "20"): (84.2, 84.6), ("80-120", "final"): (84.1, 84.3),
       ("0-100", "10"): (80.0, 80.5), ("0-100", "20"): (80.2, 80.4), ("0-100", "final"): (81.0, 81.2),
       ("80-120", "eb"): (83.9, 84.1)}
EB_TRAIN = (84.5, 84.7)


def _write(folder: Path, res: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(res))


def _config(scale, seed: int) -> dict:
    """The recorded config fields a report checks against the scale (a mismatch reads as stale)."""
    return {"epochs": scale.epochs, "batch_size": scale.batch_size, "test_batch_size": scale.test_batch_size,
            "train_images": scale.train_images, "test_images": scale.test_images, "knobs": {"width": 0.0625},
            "seed": seed, "data_root": "fake"}


def _retrain(scale, r, acc: float, dense_acc: float, cx: dict) -> dict:
    """A retraining's result with the keys the table pages read."""
    half = {k: v / 2 for k, v in cx.items() if isinstance(v, (int, float))}
    return {"kind": "retrain", "scale": scale.name, "best_acc": acc, "final_acc": acc, "best_epoch": 3, "ratio": 0.5,
            "draw_epoch": 6, "init": r.init, "search_best_acc": dense_acc, "complexity": half, "dense_complexity": cx,
            "param_reduction": 0.5, "flop_reduction": 0.5, "train_flops": 1e12, "train_flops_eb_units": 0.02,
            "config": _config(scale, r.search.seed), "provenance": {"commit": "fake", "date": "2020-01-02T00:00:00+00:00"}}


def _tree(results: Path, scale, dense_acc: float, images: int = 62_720) -> None:
    """``images`` / batch 32 = steps per epoch: 62,720 gives the paper's 1,960, so the tiny draws "10" and
    "20" (epochs 1 and 2) had the paper's steps; 200 (tiny's own) gives 7, and they are not comparable."""
    model = build_model("vgg16", 10, width=0.0625)
    cx = complexity(model)
    n = sum(m.num_features for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    rng = np.random.default_rng(0)
    for sr in {r.search for c in table1_cells(scale, SPEC) for r in c.runs} | set(figure3_searches(scale, SPEC, "figure5")):
        # |gamma| settle at epoch 2, where the ticket is drawn: every later mask equals it
        g = np.abs(rng.normal(0.5, 0.2, (scale.epochs + 1, n))).astype(np.float32)
        g[2:] = g[2]
        masks = {f"mask_p{p}": masks_from_gammas(torch.from_numpy(g), p).numpy() for p in (0.3, 0.5, 0.7)}
        out = Path(sr.path(str(results)))
        out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(out / "history.npz", gammas=g, **masks)
        _write(out, {"kind": "search", "scale": scale.name, "best_acc": dense_acc, "final_acc": dense_acc, "train_images": images,
                     "config": {**_config(scale, sr.seed), "milestones": [8, 12] if sr.schedule == "80-120" else [0, 10]},
                     "eb_epochs": {str(p): {"paper": 2, "official": 1} for p in (0.3, 0.5, 0.7)}, "complexity": cx,
                     "train_flops": 1e13, "train_flops_eb_units": 0.2,
                     "log": [], "provenance": {"commit": "fake", "date": "2020-01-01T00:00:00+00:00", "device": "cpu"}})
    for c in table1_cells(scale, SPEC):
        for r, acc in zip(c.runs, ACC[c.schedule, c.draw]):
            _write(Path(r.path(str(results))), {**_retrain(scale, r, acc, dense_acc, cx), "draw": r.draw})
    for c in table2_cells(scale, SPEC):
        accs = EB_TRAIN if c.method == "eb_train" else ACC["80-120", "eb"]
        for r, acc in zip(c.runs, accs):
            _write(Path(r.path(str(results))), {**_retrain(scale, r, acc, dense_acc, cx), "draw": "eb"})


@pytest.fixture(scope="module")
def scale():
    return load_scale("tiny").model_copy(update={"seeds": [1, 2]})


@pytest.fixture(scope="module")
def page(tmp_path_factory, scale) -> Path:
    """The hand-made tree reported: Table 1's page (cell pages to link) and the claims page."""
    from reports.pages import claims, table1

    results = tmp_path_factory.mktemp("claims") / "tiny"
    _tree(results, scale, 85.0)
    table1.build(scale, str(results), "fake", SPEC)
    claims.build(scale, str(results), "fake", SPEC)
    return results


def test_verdicts_on_a_hand_made_tree(page, scale):
    from reports.pages.claims import verdicts

    v, _ = verdicts(scale, str(page), SPEC)
    assert v["EB-1"].verdict == C.HOLDS       # epoch 2 x 1,960 steps, before the decay at 8, masks fixed after it
    assert v["EB-2"].verdict == C.HOLDS       # draws 10/20 vs final within 0.5 pp
    assert v["EB-3"].verdict == C.HOLDS       # [80,120] 4 pp above [0,100]
    assert v["EB-4"].verdict == C.FAILS and "1 of 1" in v["EB-4"].reason   # re-init 0.6 pp below EB Train
    assert v["EB-7"].verdict == C.HOLDS and all(r["diff"] < 1 for r in v["EB-7"].rows)
    for cid in ("EB-5", "EB-6", "EB-6c", "RT-1", "RT-2"):
        assert v[cid].verdict == C.NOT_JUDGED and "specification" in v[cid].reason, cid
    # draws 10, 20 and the EB epoch (Table 2's re-init, the same recipe): 84.2, 84.4, 84.0 vs final 84.2
    assert [r["a"].mean for r in v["EB-2"].rows] == [pytest.approx(84.2), pytest.approx(84.4), pytest.approx(84.0)]
    eb4 = v["EB-4"].rows[0]
    assert eb4["diff"] == pytest.approx(-0.6) and eb4["tol"] == 0.5 and eb4["ok"] is False


def test_a_network_near_chance_judges_only_the_cost_claims(tmp_path, scale):
    from reports.pages.claims import verdicts

    _tree(tmp_path, scale, 14.0)
    v, _ = verdicts(scale, str(tmp_path), SPEC)
    for cid in ("EB-1", "EB-2", "EB-3", "EB-4"):
        assert v[cid].verdict == C.NOT_JUDGED and "72.7 %" in v[cid].reason, cid
    assert v["EB-7"].verdict == C.HOLDS


def test_early_draws_are_judged_only_where_they_had_the_papers_steps(tmp_path, scale):
    """7 steps per epoch: Table 1's "10"/"20" are 7 and 14 steps, not the paper's 1,960 and 3,920; they are
    shown, not judged, and EB-2 rests on the EB-epoch draw (which the paper's rule times itself)."""
    from reports.pages.claims import verdicts

    _tree(tmp_path, scale, 85.0, images=200)
    v, _ = verdicts(scale, str(tmp_path), SPEC)
    early = [r for r in v["EB-2"].rows if "early" in r["what"]]
    assert len(early) == 2 and [r["why"].split(";")[0] for r in early] == ["drawn after 7 SGD steps", "drawn after 14 SGD steps"]
    assert v["EB-2"].verdict == C.HOLDS and "2 not judged" in v["EB-2"].reason
    assert v["EB-3"].verdict == C.NOT_JUDGED and "not comparable" in v["EB-3"].reason
    assert C.paper_draw("10", 3, 196, CFG) == (None, 588)          # mid's "10": epoch 3
    assert C.paper_draw("40", 10, 196, CFG) == (10, 1960)          # mid's "40": the paper's 10 in steps
    assert C.paper_draw("20", 20, 98, CFG) == (10, 1960)           # 25,000 images at batch 256


def test_the_claims_page_lists_every_claim_and_its_links_resolve(page):
    html = (page / "report" / "claims.html").read_text()
    for c in CFG["claims"]:
        assert f'id="{c["id"]}"' in html and f'href="#{c["id"]}"' in html
    assert "reduced-scale test of the papers' conclusions" in html
    hrefs = re.findall(r'(?:href|src)="([^"#]+)"', html.split("</nav>", 1)[1])  # the site-wide nav lists every page
    assert any(h.startswith("cells/table1/") for h in hrefs) and "claims_eb1.png" in hrefs
    for h in hrefs:  # every link of the page's own content resolves (a table page not built is not linked)
        assert (page / "report" / h).is_file(), h
    csv = (page / "tables" / "claims.csv").read_text().splitlines()
    assert len(csv) == 1 + len(CFG["claims"])


def _dry_run(spec: str) -> set[str]:
    p = subprocess.run([sys.executable, "-m", "snakemake", "-n", "claims", "--config", "scale=mid",
                        "data_root=../shared/data", f"tables={spec}", "results=/tmp/claims-dry", "runs_per_job=1"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.slow  # a Snakemake dry run each
@pytest.mark.parametrize("spec_file, n_search, n_retrain", [("claims_mid.yaml", 3, 15), ("claims_mid_eb3.yaml", 6, 24)])
def test_the_claims_target_lists_exactly_the_runs_the_claims_need(spec_file, n_search, n_retrain):
    """Part 1: [80,120] searches (seeds 1-3), Table 1 draws 40/80/final and Table 2's EB Train and re-init at
    p = 0.5; part 2 adds the [0,100] searches and their three draws. No dense run, no lottery arm."""
    scale, spec = load_scale("mid"), load_tables(ROOT / "benchmarks" / spec_file)
    retrains = {r for c in table1_cells(scale, spec) + table2_cells(scale, spec) for r in c.runs}
    searches = {r.search for r in retrains} | set(figure3_searches(scale, spec, "figure5"))
    out = _dry_run(f"benchmarks/{spec_file}")
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    assert counts["search"] == len(searches) == n_search and counts["retrain"] == len(retrains) == n_retrain
    assert "dense" not in counts and "lottery" not in counts and counts["report_claims"] == 1


def test_status_and_index_say_how_many_claims_hold(page, scale):
    from reports.pages import claims, index

    assert claims.status_line(scale, str(page), SPEC) == \
        "claims: 4 of 10 hold, 1 do not, 5 not judged (report/claims.html)"
    # the index reads tables/claims.csv (written by the claims page); Table 2's page is left out here
    index.build(scale, str(page), "fake", {k: v for k, v in SPEC.items() if k != "table2"})
    html = (page / "report" / "index.html").read_text()
    assert "claims at this scale: 4 of 10 hold" in html and 'href="claims.html"' in html


def test_published_evidence_holds_results_only_and_the_claims_page_builds_from_it(page, scale, tmp_path):
    from benchmarks.publish_evidence import publish
    from reports.pages import claims
    (Path(page) / "search" / "vgg16-cifar10-80-120-lr0.1-s1" / "ckpt.pt").write_bytes(b"weights")
    dest = tmp_path / "evidence" / "tiny"
    files = publish(Path(page), dest, "SPEC")
    kept = {p.name for p in dest.rglob("*") if p.is_file()}
    assert (kept == {"result.json", "history.npz", "PROVENANCE.md"}
            and len(files) == 4 * 2 + 12 + 4)  # searches x (result, history), Table 1, Table 2
    assert "| `fake` |" in (dest / "PROVENANCE.md").read_text()
    assert claims.build(scale, str(dest), "fake", SPEC) == {"holds": 4, "does not hold": 1, "not judged": 5, "total": 10}


def test_cost_claim_reads_flops_and_modelled_energy_of_every_baseline(tmp_path, scale):
    """EB-6c on a tree whose SNIP cell costs more than EB Train in FLOPs but less in energy: does not hold."""
    from reports.pages.claims import verdicts

    spec = {k: v for k, v in SPEC.items() if k != "table1"}
    spec["table2"] = {**SPEC["table2"],
                      "rows": {**SPEC["table2"]["rows"], "snip": {"prune": "snip", "draw": "0", "init": "drawn"}}}
    _tree(tmp_path, scale, 14.0)  # near chance: EB-6c is judged anyway
    for c in table2_cells(scale, spec):
        flops, joules = (3e12, 50.0) if c.method == "snip" else (1e12, 80.0)
        for r in c.runs:
            res = {**_retrain(scale, r, 80.0, 14.0, {"flops": 1.0}), "train_flops_paper": flops,
                   "energy": {"modelled_search_j": joules / 2, "modelled_prune_j": 0.0, "modelled_retrain_j": joules / 2}}
            _write(Path(r.path(str(tmp_path))), res)
    v, _ = verdicts(scale, str(tmp_path), spec)
    rows = {r["what"].split(": ")[1]: r for r in v["EB-6c"].rows}
    assert rows["eb_train / snip FLOPs"]["diff"] == pytest.approx(1 / 3) and rows["eb_train / snip FLOPs"]["ok"] is True
    assert rows["eb_train / snip energy"]["diff"] == pytest.approx(80 / 50) and rows["eb_train / snip energy"]["ok"] is False
    assert v["EB-6c"].verdict == C.FAILS and v["EB-6"].verdict == C.NOT_JUDGED


def test_the_committed_mid_evidence_still_reads_as_current():
    """A results tree written by an earlier commit (benchmarks/evidence/mid, PROVENANCE.md) reads as
    done, not stale, under today's code: result contents and config digests did not change meaning."""
    from methods.runs.cells import SearchRun
    from methods.base.config import load_scale
    from methods.runs.results import load_run
    from methods.workflow.verdicts import verdicts

    mid = load_scale("mid")
    root = ROOT / "benchmarks" / "evidence" / "mid"
    run = load_run(SearchRun("vgg16", "cifar10", "80-120", 0.1, 1).path(str(root)), mid)
    assert run.status == "done" and run.result.best_acc == pytest.approx(84.53, abs=0.005)
    import yaml

    spec = yaml.safe_load((ROOT / "benchmarks" / "claims_mid.yaml").read_text())
    from methods.runs.spec import check_tables

    v = verdicts(mid, str(root), check_tables(spec, "claims_mid.yaml"))[0]
    assert any("vgg16-cifar10-80-120-lr0.1-s1" in r["what"] for r in v["EB-1"].rows)
    # the README's verdict table is what the code says of the committed files
    assert {k: v[k].verdict for k in ("EB-1", "EB-2", "EB-4", "EB-7")} == {
        "EB-1": C.FAILS, "EB-2": C.NOT_JUDGED, "EB-4": C.HOLDS, "EB-7": C.HOLDS}
    # EB-1: three searches, 4 of their 9 (seed, p) tickets fail
    assert len(v["EB-1"].rows) == 9 and sum(not r["ok"] for r in v["EB-1"].rows) == 4
    # EB-2: the final tickets of seeds 2 and 3 are disconnected (features.35 / features.38 emptied), so the
    # final draw has one valid seed
    final = [r["b"] for r in v["EB-2"].rows]
    assert all(b.n == 1 and b.left_out == 2 and b.mean == pytest.approx(82.73) for b in final) and v["EB-2"].reason.startswith(
        "fewer than 2 seeds for a spread rule (have 1): 2 disconnected ticket(s) left out")
    reinit = v["EB-4"].rows[0]
    assert reinit["a"].mean == pytest.approx((83.72 + 83.81) / 2) and reinit["b"].mean == pytest.approx((84.00 + 84.19) / 2)
