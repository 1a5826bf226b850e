"""Report pages for the reproduction: EB Tables 1, 2 and 4, Figures 1, 2, 3 and 5, RT Tables 8 and 9, a fidelity page, the claims page (each paper conclusion judged at this scale) and an index.

Each page reads the run folders named by ``methods.cells`` under one results tree
(``results/<scale>``), treats a run without ``result.json`` as pending, and writes its files
atomically: ``tables/*.csv`` for machines, ``report/*.html`` (+ ``.png``) for people. The
HTML is self-contained (inline CSS, no scripts, no remote URLs) so it opens from the file system.
"""

#: Page names accepted by ``python -m reports``; the Snakefile depends on their outputs.
PAGES = ("table1", "table2", "table4", "figure1", "figure2", "figure3", "figure5", "table8", "table9", "fidelity", "claims", "index")
