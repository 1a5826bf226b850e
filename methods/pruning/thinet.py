"""ThiNet channel pruning: greedy next-layer reconstruction and least-squares rescaling.

Source: Luo, Wu & Lin, ICCV 2017 (ThiNet), section 3, eqs. 1-6; official Caffe code
``Roll920/ThiNet_Code`` ``ThiNet_ICCV/compress_model.py`` (greedy ``value_sum``, then
``compress_net`` least squares); REFERENCE.md section 7 and ``shared/notes/baselines.md`` section 4.

Removing output channels of layer i is removing input channels of layer i+1, judged by layer
i+1's output alone. A sample is (image, output channel d of layer i+1, spatial position); its
row of X holds each input channel's contribution x_c = sum_k W[d, c, k] * input[c, window_k],
and y = sum_c x_c is the layer's bias-free output. The channels whose summed contribution has
the smallest squared norm are removed greedily, then the kept channels' weights in layer i+1
are rescaled by argmin_w ||X_S w - y||^2.

Layers are pruned one at a time in network order, each from the activations of the network
with the earlier layers already pruned and rescaled. Pruned layers: every conv of VGG (the
last one guided by the Linear after the 2x2 average pool, as the ICCV code does for
conv5_3 -> fc6); on PreResNet conv1 and conv2 of each bottleneck (guided by conv2's and
conv3's inputs), never conv3, the shortcuts or the block-input BNs. ThiNet's per-layer
fine-tuning between layers is not done (REFERENCE.md section 7: default none).
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from methods.pruning.eb import bn_layers
from methods.pruning.channels import rule_of
from methods.pruning.unstructured import removed_count

#: Training images sampled per layer and (d, position) samples per image; the ICCV code uses
#: 10 samples per image (100k per ImageNet layer); REFERENCE.md suggests >= 1000 CIFAR images.
SAMPLE_IMAGES = 1000
SAMPLES_PER_IMAGE = 10


def kept_count(channels: int, ratio: float) -> int:
    """Channels a layer keeps at pruning ratio ``ratio``: C - floor(ratio C), at least 1 (decimal-exact).

    Raises:
        ValueError: ``ratio`` outside (0, 1).
    """
    return max(1, channels - removed_count(ratio, channels))


def greedy_remove(x: torch.Tensor, remove: int) -> list[int]:
    """ThiNet eq. 6, greedy: channels to remove, in the order chosen.

    ``x``: contributions ``(m samples, C channels)``. Starting from T = {}, adds the channel j
    minimising ||sum_{t in T} x[:, t] + x[:, j]||^2 until |T| = ``remove``; ties go to the
    lowest index. Greedy, as ThiNet's: a set whose members cancel only together (x_a = -x_b)
    is not found.

    Raises:
        ValueError: ``remove`` outside [0, C).
    """
    if not 0 <= remove < x.shape[1]:
        raise ValueError(f"can remove 0 to {x.shape[1] - 1} of {x.shape[1]} channels, not {remove}")
    removed: list[int] = []
    s = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    taken = torch.zeros(x.shape[1], dtype=torch.bool, device=x.device)
    for _ in range(remove):
        cost = ((s[:, None] + x) ** 2).sum(0)
        cost[taken] = math.inf
        j = int(cost.argmin())
        removed.append(j)
        taken[j] = True
        s += x[:, j]
    return removed


def lstsq_scale(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """argmin_w ||x w - y||^2: ``x`` ``(m, k)``, ``y`` ``(m,)`` -> ``(k,)`` in ``x``'s dtype and device.

    Solved in float64 on the CPU, where ``gelsd`` copes with a rank-deficient x (a channel that
    is never active); CUDA offers only ``gels``, which needs full rank.
    """
    sol = torch.linalg.lstsq(x.double().cpu(), y.double().cpu()[:, None], driver="gelsd").solution
    return sol[:, 0].to(x)


def layer_pairs(model: nn.Module) -> list[tuple[int, nn.Module]]:
    """``(bn index, next layer)`` for every prunable layer: the BN whose channels are removed and
    the conv or Linear whose input channels they are (the family's ``methods.pruning.channels.CHANNEL_RULES``).

    Raises:
        TypeError: a model family without a channel-pruning rule.
    """
    return rule_of(model).consumers(model)


@torch.no_grad()
def contributions(layer: nn.Module, inputs: torch.Tensor, per_image: int, gen: torch.Generator) -> torch.Tensor:
    """X ``(B * per_image, C)``: each input channel's contribution to randomly drawn outputs.

    ``inputs``: the layer's input, ``(B, C, H, W)`` for a Conv2d or ``(B, C)`` for a Linear
    (where a sample is one logit j and x_c = W[j, c] * input[c]); ``gen`` draws the output
    channel and position of each sample (any device). Only the sampled windows are gathered,
    so memory is ``B * per_image * C * k * k``, not the whole unfolded input.

    Raises:
        TypeError: a layer other than Conv2d (groups 1) or Linear.
    """
    b, w = inputs.shape[0], layer.weight
    d = torch.randint(w.shape[0], (b, per_image), generator=gen, device=gen.device).to(inputs.device)
    if isinstance(layer, nn.Linear):
        return (w[d] * inputs[:, None, :]).reshape(-1, inputs.shape[1])
    if not isinstance(layer, nn.Conv2d) or layer.groups != 1 or isinstance(layer.padding, str):
        raise TypeError(f"ThiNet samples Conv2d (groups 1, numeric padding) or Linear layers, not {layer}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = layer.kernel_size, layer.stride, layer.padding, layer.dilation
    oh = (inputs.shape[2] + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (inputs.shape[3] + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    pos = torch.randint(oh * ow, (b, per_image), generator=gen, device=gen.device).to(inputs.device)
    padded = F.pad(inputs, (pw, pw, ph, ph))
    dev = inputs.device
    rows = (pos // ow * sh)[..., None] + torch.arange(kh, device=dev) * dh  # (B, P, kh)
    cols = (pos % ow * sw)[..., None] + torch.arange(kw, device=dev) * dw  # (B, P, kw)
    img = torch.arange(b, device=dev)[:, None, None, None, None]
    chan = torch.arange(inputs.shape[1], device=dev)[None, None, :, None, None]
    patches = padded[img, chan, rows[:, :, None, :, None], cols[:, :, None, None, :]]  # (B, P, C, kh, kw)
    return (patches * w[d]).sum((-2, -1)).reshape(-1, inputs.shape[1])


def _layer_inputs(model: nn.Module, layer: nn.Module, images: torch.Tensor, batch: int = 250) -> torch.Tensor:
    grabbed = []
    handle = layer.register_forward_pre_hook(lambda m, inp: grabbed.append(inp[0].detach()))
    try:
        for i in range(0, len(images), batch):
            model(images[i:i + batch])
    finally:
        handle.remove()
    return torch.cat(grabbed)


@torch.no_grad()
def thinet_prune(model: nn.Module, images: torch.Tensor, ratio: float, seed: int = 0,
                 per_image: int = SAMPLES_PER_IMAGE) -> tuple[nn.Module, list[torch.Tensor]]:
    """ThiNet on a trained network: every prunable layer keeps ``kept_count(C, ratio)`` channels.

    ``images``: ``(B, 3, 32, 32)`` normalised training images on the model's device (ThiNet
    samples them; ``B * per_image`` rows of X per layer). Returns a copy of ``model`` (eval
    mode) whose next-layer weights are rescaled, whose pruned input columns and pruned BN
    gamma/beta are zero, and one bool mask per BatchNorm2d (True = kept; BNs that are never
    pruned keep all). ``methods.pruning.channels.prune_channels(copy, masks)`` then removes the channels;
    its outputs equal the returned copy's.

    Raises:
        ValueError: ``ratio`` outside (0, 1); TypeError: a model family without a ThiNet rule.
    """
    net = copy.deepcopy(model).eval()
    bns = bn_layers(net)
    masks = [torch.ones(b.num_features, dtype=torch.bool) for b in bns]
    gen = torch.Generator(device=images.device).manual_seed(seed)
    for bn_i, nxt in layer_pairs(net):
        x = contributions(nxt, _layer_inputs(net, nxt, images), per_image, gen).double()
        c = x.shape[1]
        removed = greedy_remove(x, c - kept_count(c, ratio))
        keep = torch.ones(c, dtype=torch.bool)
        keep[removed] = False
        scale = lstsq_scale(x[:, keep.to(x.device)], x.sum(1))
        w = nxt.weight
        w[:, keep.to(w.device)] *= scale.to(w).view(-1, *([1] * (w.dim() - 2)))
        w[:, (~keep).to(w.device)] = 0
        gone = (~keep).to(bns[bn_i].weight.device)
        bns[bn_i].weight[gone] = 0
        bns[bn_i].bias[gone] = 0
        masks[bn_i] = keep
    return net, masks
