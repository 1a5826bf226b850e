"""The fidelity page: where our defaults differ from the papers' text or their official code.

The entries live in ``reports/fidelity.yaml`` (one per difference: paper, code, ours, the
option that restores the other behaviour, and the source), so adding a difference is one
edit next to the code that makes it.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from methods.base.config import ConfigError, Scale

from reports.common import provenance, render, scale_note
from reports.io import write_text

FIDELITY_YAML = Path(__file__).resolve().parents[1] / "fidelity.yaml"
FIELDS = ("area", "topic", "paper", "code", "ours", "option", "source")


def load(path: Path = FIDELITY_YAML) -> list[dict]:
    """The entries, each with every field of ``FIELDS``.

    Raises:
        ConfigError: invalid YAML, or an entry lacks a field or has an unknown one.
    """
    try:
        entries = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{Path(path).name} is not valid YAML ({str(e).splitlines()[0]}); "
                          "quote values that contain ': ' or '\"'") from e
    for i, e in enumerate(entries):
        if set(e) != set(FIELDS):
            raise ConfigError(f"{Path(path).name} entry {i + 1} ({e.get('topic', '?')}): fields must be exactly "
                              f"{', '.join(FIELDS)}; missing {sorted(set(FIELDS) - set(e))}, "
                              f"unknown {sorted(set(e) - set(FIELDS))}")
    return entries


def build(scale: Scale, results: str, data_root: str | None = None, spec: dict | None = None) -> dict:
    """Write ``report/fidelity.html``; return the number of entries per area."""
    entries = load()
    areas = {}
    for e in entries:
        areas.setdefault(e["area"], []).append(e)
    html = render("fidelity.html", title="Fidelity: where our defaults differ from the papers and their code", scale=scale,
                  prov=provenance([], data_root), scale_note=scale_note(scale), areas=areas)
    write_text(Path(results) / "report" / "fidelity.html", html)
    return {a: len(v) for a, v in areas.items()}
