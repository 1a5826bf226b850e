"""Layer 3, specification: what a run is and what it records. ``spec`` (tables.yaml's schema), ``cells``
(run identity, run-folder names, cell expansion), ``digest`` (config digests, stale results), ``results``
(the typed result model, validated when written and read)."""
