"""Atomic figure writes; text goes through ``methods.base.io`` (old file or new, never half).

Snakemake treats an existing output as done, so a page killed mid-write must not leave a
truncated HTML/CSV/PNG behind.
"""
from __future__ import annotations

import io
from pathlib import Path

from methods.base.io import write_bytes, write_text

__all__ = ["write_bytes", "write_text", "write_figure", "publish"]


def write_figure(path, fig, dpi: int = 120) -> None:
    """Save a matplotlib figure as PNG atomically.

    ``Software`` metadata is dropped: matplotlib would otherwise embed its web address, and
    the pages promise no remote URL anywhere.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    write_bytes(path, buf.getvalue())


def publish(results, name: str, table, fig, html: str) -> None:
    """Write one figure page's files: ``tables/<name>.csv`` (a DataFrame), ``report/<name>.png``
    and ``report/<name>.html``, closing the figure."""
    from reports.plotting import plt

    out = Path(results)
    write_text(out / "tables" / f"{name}.csv", table.to_csv(index=False))
    write_figure(out / "report" / f"{name}.png", fig)
    plt.close(fig)
    write_text(out / "report" / f"{name}.html", html)
