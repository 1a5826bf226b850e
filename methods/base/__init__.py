"""Layer 0, base: configuration and scales, files and atomic writes, data, input checks, provenance,
cluster signals and attempt logs, and the registries that import nothing else of the suite (tables,
claims, plug-ins). Imports nothing above itself."""
