"""Matplotlib set-up shared by the figure pages: Agg (no display on cluster nodes), one style."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless nodes have no display

import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.facecolor": "white"})

__all__ = ["plt"]
