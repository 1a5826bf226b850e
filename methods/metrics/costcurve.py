"""EB Figure 5's cost curve: what a ticket drawn at any epoch of a search would cost, from the
search's |gamma| history alone, without training it (EB Section 4.3, Figure 5; REFERENCE.md
section 7). The pages (``reports.pages.figure5``, the claims page's EB-7) read it; they train nothing.
"""
from __future__ import annotations

import torch

from methods.base.data import num_classes
from methods.pruning.eb import channel_mask, layer_masks
from methods.metrics.flops import complexity
from methods.models import build_model
from methods.pruning.channels import prune_channels, pruned_cfg


class DrawCosts:
    """Complexity of the networks BN pruning (network slimming, ``methods.pruning.registry`` ``bn``) draws
    from one search: ``model`` built with ``knobs`` for ``dataset``'s classes. A pruned
    architecture's FLOPs depend on its cfg alone, so each cfg is counted once."""

    def __init__(self, model: str, knobs: dict, dataset: str):
        self.classes = num_classes(dataset)
        self.dense = build_model(model, self.classes, **knobs)
        self._by_cfg: dict[str, dict] = {}

    def pruned(self, gammas: torch.Tensor, ratio: float) -> dict:
        """``methods.metrics.flops.complexity`` (FLOPs and MACs per 3x32x32 image, both conventions) of the
        network drawn at |gamma| ``gammas`` ``(N,)`` and pruning ratio ``ratio``.

        Raises:
            ValueError: ``ratio`` outside (0, 1) or ``gammas`` not the model's N channels.
        """
        per_layer = layer_masks(self.dense, channel_mask(gammas, ratio), gammas)
        key = str(pruned_cfg(self.dense, per_layer))
        if key not in self._by_cfg:
            self._by_cfg[key] = complexity(prune_channels(self.dense, per_layer, self.classes))
        return self._by_cfg[key]
