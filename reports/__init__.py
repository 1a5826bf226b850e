"""Report pages for the reproduction: EB Tables 1, 2 and 4, Figures 1, 2, 3 and 5, RT Tables 8 and 9, a fidelity page,
the claims page (each paper conclusion judged at this scale) and an index.

Each page reads the run folders named by ``methods.runs.cells`` under one results tree
(``results/<scale>``), treats a run without ``result.json`` as pending, and writes its files
atomically: ``tables/*.csv`` for machines, ``report/*.html`` (+ ``.png``) for people. The
HTML is self-contained (inline CSS, no scripts, no remote URLs) so it opens from the file system.
"""

from methods.base.tables import OTHER_PAGES, TABLES


def page_names() -> list[str]:
    """Page names accepted by ``python -m reports``: every registered table (``methods.base.tables``,
    plug-ins included), then the fidelity, claims and index pages; the Snakefile depends on their outputs."""
    return [*TABLES, *OTHER_PAGES]
