"""Atomic figure writes; text goes through ``methods.io`` (old file or new, never half).

Snakemake treats an existing output as done, so a page killed mid-write must not leave a
truncated HTML/CSV/PNG behind.
"""
from __future__ import annotations

import io

from methods.io import write_bytes, write_text

__all__ = ["write_bytes", "write_text", "write_figure"]


def write_figure(path, fig, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically.

    ``Software`` metadata is dropped: matplotlib would otherwise embed its web address, and
    the pages promise no remote URL anywhere.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    write_bytes(path, buf.getvalue())
