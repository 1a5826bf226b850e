"""Layer 2, algorithms: the training loop (``loop``) and low-precision training (``lowp``)."""
