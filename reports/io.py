"""Atomic writes of text and figures (same guarantee as ``methods.io``: old file or new, never half).

Snakemake treats an existing output as done, so a page killed mid-write must not leave a
truncated HTML/CSV/PNG behind.
"""
from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path


def write_bytes(path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_figure(path, fig, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically.

    ``Software`` metadata is dropped: matplotlib would otherwise embed its web address, and
    the pages promise no remote URL anywhere.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    write_bytes(path, buf.getvalue())
