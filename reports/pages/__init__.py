"""One module per page (tables, figures, claims, fidelity, index, cell pages). Each reads result files
through ``reports.io`` and never trains."""
