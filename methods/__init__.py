"""Models, pruning methods, training stages and table cells of the EB/RT reproduction suite."""

#: The suite's version, recorded in every result's provenance beside the commit.
__version__ = "0.4.0"
