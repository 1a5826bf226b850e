"""Copy a finished results tree's evidence into ``benchmarks/evidence/<scale>/`` (issue 17).

Only ``result.json`` and ``history.npz`` travel (no checkpoints, snapshots or weights), and the
copy must stay under 10 MB; ``PROVENANCE.md`` names the commits and dates that produced them.
The report then builds from the folder alone:

    .venv/bin/python -m benchmarks.publish_evidence results/mid --tables benchmarks/claims_mid.yaml
    .venv/bin/python -m reports all --scale mid --results benchmarks/evidence/mid --tables benchmarks/claims_mid.yaml
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 10 * 2 ** 20  # the 10 MB


def publish(src: Path, dest: Path, tables: str) -> list[Path]:
    """Copy every result.json/history.npz under ``src`` to the same place under ``dest``; write PROVENANCE.md."""
    files = sorted(p for name in ("result.json", "history.npz") for p in src.rglob(name) if "report" not in p.parts)
    size = sum(p.stat().st_size for p in files)
    if size > LIMIT:
        raise SystemExit(f"error: {len(files)} files are {size / 2**20:.1f} MB, over 10 MB; trim the tree or the specification")
    prov = {}
    for f in files:
        out = dest / f.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, out)
        if f.name == "result.json":
            p = json.loads(f.read_text()).get("provenance") or {}
            prov.setdefault(p.get("commit", "?"), []).append(p.get("date", "?"))
    lines = [f"# Evidence at scale {dest.name}", "",
             "A reduced-scale test of the papers' conclusions, not of their numbers (README, Claims).",
             f"Specification: `{tables}`. Files: {len(files)} ({size / 2**20:.2f} MB), result.json and history.npz only.", "",
             "| commit | runs | first date | last date |", "|---|---|---|---|"]
    lines += [f"| `{c}` | {len(d)} | {min(d)} | {max(d)} |" for c, d in sorted(prov.items())]
    (dest / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.publish_evidence", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="results tree of one scale, e.g. results/mid")
    ap.add_argument("--dest", default=None, help="default benchmarks/evidence/<scale folder name>")
    ap.add_argument("--tables", required=True, help="the specification it was run with, e.g. benchmarks/claims_mid.yaml")
    args = ap.parse_args(argv)
    src = Path(args.src)
    if not src.is_dir():
        print(f"error: {src} is not a results tree; pass results/<scale>", file=sys.stderr)
        return 2
    dest = Path(args.dest) if args.dest else ROOT / "benchmarks" / "evidence" / src.name
    print(f"{len(publish(src, dest, args.tables))} files -> {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
