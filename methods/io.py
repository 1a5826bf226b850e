"""Atomic result files and checkpoints.

Every file is written to a temporary sibling and moved into place with ``os.replace``, so a
killed process leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` atomically."""
    _atomic(path, lambda f: f.write(data))


def write_text(path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (HTML pages, CSV tables)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    _atomic(path, lambda f: f.write(json.dumps(obj, indent=1, sort_keys=True).encode()))


def read_json(path) -> dict:
    with open(path) as f:
        return json.load(f)


def save_torch(path, obj) -> None:
    """``torch.save`` atomically (checkpoints, snapshots)."""
    _atomic(path, lambda f: torch.save(obj, f))


def load_torch(path, what: str = "checkpoint"):
    """``torch.load(weights_only=True)`` on the CPU.

    Raises:
        RuntimeError: unreadable or corrupt file, naming it and the fix (delete it to start over).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise RuntimeError(f"corrupt or unreadable {what} {path} ({type(e).__name__}); delete it to start that stage over") from e


def save_npz(path, **arrays) -> None:
    """``np.savez_compressed`` atomically."""
    _atomic(path, lambda f: np.savez_compressed(f, **arrays))


def finished(out, upstream) -> dict | None:
    """The result of the run in ``out`` if it is finished and current, else None.

    Finished: ``out/result.json`` exists. Current: it is no older than ``upstream/result.json``,
    the search or dense run it was trained from (Snakemake's mtime rule: a grouped job keeps its
    finished runs' results, its outputs being marked ``update`` in the Snakefile, so the stage
    itself must tell a stale one). A stale result is ignored (the stage trains again and
    replaces it) and a stale checkpoint ``out/ckpt.pt`` deleted, so training does not resume
    from weights trained on the upstream run's earlier version.
    """
    out, up = Path(out), Path(upstream) / "result.json"
    up_mtime = up.stat().st_mtime if up.is_file() else float("-inf")
    ckpt, result = out / "ckpt.pt", out / "result.json"
    if ckpt.is_file() and ckpt.stat().st_mtime < up_mtime:
        ckpt.unlink()
    return read_json(result) if result.is_file() and result.stat().st_mtime >= up_mtime else None
