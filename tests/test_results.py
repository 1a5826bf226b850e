"""The typed result model (methods/runs/results.py): a stage cannot write a result missing what its kind
records, and a page shows a result of the wrong shape as pending (corrupt), never as a number."""
from __future__ import annotations

import json

import pytest

from methods.base.config import load_scale
from methods.base.io import read_json
from methods.runs.results import RECORDED, load_run, write_result


def _search(**over) -> dict:
    res = {"kind": "search", "scale": "tiny", "config": {}, "log": [{"epoch": 1, "test_acc": 10.0}], "best_acc": 10.0,
           "final_acc": 10.0, "eb_epochs": {"0.5": {"paper": 3, "official": None}}, "complexity": {"flops": 2.0, "macs": 1},
           "train_flops": 1e9, "train_flops_paper": 1.1e9, "energy": {}, "provenance": {}, "config_digest": "abc"}
    return {**res, **over}


def test_write_result_refuses_a_missing_recorded_field_and_a_wrong_type(tmp_path):
    f = tmp_path / "result.json"
    res = _search()
    res.pop("eb_epochs")
    with pytest.raises(ValueError, match=r"a search result must record \['eb_epochs'\]"):
        write_result(f, res)
    with pytest.raises(ValueError, match="best_acc"):
        write_result(f, _search(best_acc="high"))
    with pytest.raises(ValueError, match="must record best_acc"):
        write_result(f, _search(best_acc=None))
    assert not f.exists()
    write_result(f, _search())
    assert read_json(f)["best_acc"] == 10.0  # written with its checksum (methods.base.io), read back whole
    assert set(RECORDED) == {"search", "retrain", "dense", "lottery"}


def test_a_result_of_the_wrong_shape_reads_as_corrupt_not_as_a_number(tmp_path, capsys):
    tiny = load_scale("tiny")
    good, bad, refused = tmp_path / "good", tmp_path / "bad", tmp_path / "refused"
    for d, res in ((good, _search()), (bad, _search(eb_epochs={"0.5": "twelve"})),
                   (refused, {"kind": "retrain", "scale": "tiny", "no_ticket": "refused", "best_acc": None})):
        d.mkdir()
        (d / "result.json").write_text(json.dumps(res))
    assert load_run(good, tiny).status == "done" and load_run(refused, tiny).done
    run = load_run(bad, tiny)
    assert (run.status, run.result) == ("corrupt", None)
    assert "eb_epochs.0.5: Input should be a valid dictionary" in capsys.readouterr().err


def test_a_draw_given_as_a_number_is_the_folder_name_s_string(tmp_path):
    """``draw=10`` from a Python caller is draw "10" (the run-folder name part, and what the config digest
    hashes), written, not refused after the run trained; a draw of another type is refused."""
    from methods.runs.results import Result

    assert Result(draw=10).draw == "10" and Result(draw="final").draw == "final"
    with pytest.raises(ValueError, match="draw"):
        write_result(tmp_path / "result.json", _search(draw=[10]))
