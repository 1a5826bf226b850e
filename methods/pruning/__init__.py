"""Layer 2, algorithms: how a ticket is drawn. ``registry`` (the methods and their table of sources),
``channels`` (channel surgery and the per-family rules), ``unstructured`` (weight masks), ``eb`` (scaling-factor
masks, mask distance, Early-Bird detection), ``l1`` and ``thinet`` (the other criteria), ``ticket`` (validity)."""
