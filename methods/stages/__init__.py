"""Layer 4, stages: ``eb`` (EB search and retraining) and ``lottery`` (RT dense runs and lottery arms),
on a public common core (``common``). Each stage takes a run and writes one ``methods.runs.results.Result``."""
