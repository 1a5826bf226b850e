"""Layer 5, workflow: jobs and batches, status, rerun, the claims' verdicts. The command line is
``python -m methods`` (``methods/__main__.py``)."""
