"""Layer 2, algorithms: what a run costs. ``flops`` (FLOPs and MACs, the papers' convention),
``energy`` (measured and modelled joules), ``costcurve`` (Figure 5's training FLOPs per draw)."""
