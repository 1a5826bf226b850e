"""Training energy, two ways: measured by a meter, and modelled from counted operations.

Measured: Zeus (``zeus.monitor.ZeusMonitor``; NVML for NVIDIA GPUs, RAPL for CPU packages and
DRAM) over each training epoch. Where no meter is readable the energy is ``None`` and the
reason is recorded (REFERENCE.md section 1: EB's own platform could not be confirmed; absolute
kJ cannot be matched on other hardware, ratios can).

Modelled: multiply-accumulates x energy per MAC at the arithmetic's bit width, compute only
(no memory traffic, which dominates on real chips: compare ratios, not joules).
"""
from __future__ import annotations

import torch

#: Energy of one multiply-accumulate (one multiply + one add), picojoules, 45 nm:
#: Horowitz, "Computing's energy problem", ISSCC 2014, Figure 1.1.9. FP32: mult 3.7 + add 0.9;
#: FP16: 1.1 + 0.4; 8-bit integer: 0.2 + 0.03 (8-bit block floating point multiplies 8-bit
#: integer mantissas under a shared exponent, so it is charged at the integer cost).
PJ_PER_MAC: dict[int, float] = {32: 4.6, 16: 1.5, 8: 0.23}
MODEL_SOURCE = "Horowitz ISSCC 2014, 45 nm, compute only: 4.6 pJ per FP32 MAC, 0.23 pJ per 8-bit MAC"


def modelled_energy_j(flops: float, bits: int = 32) -> float:
    """Joules of ``flops`` FLOPs (2 FLOPs per MAC) at ``bits``-bit arithmetic.

    E.g. dense VGG16 trained 160 epochs on 50,000 images: 1.506e16 FLOPs -> 34.6 kJ at FP32.

    Raises:
        ValueError: a bit width without a constant.
    """
    if bits not in PJ_PER_MAC:
        raise ValueError(f"no energy per MAC for {bits}-bit arithmetic; known: {sorted(PJ_PER_MAC)}")
    return flops / 2 * PJ_PER_MAC[bits] * 1e-12


def charged_bits(bits: int) -> int:
    """The narrowest width with an energy constant that holds ``bits``-bit arithmetic (e.g. a
    6-bit format is charged as 8-bit): a model can only round up to what Horowitz tabulates.

    Raises:
        ValueError: wider than 32 bits.
    """
    fits = [b for b in PJ_PER_MAC if b >= bits]
    if not fits:
        raise ValueError(f"no energy per MAC for {bits}-bit arithmetic; known: {sorted(PJ_PER_MAC)}")
    return min(fits)


class EnergyMeter:
    """Energy of a window of work on ``device``'s GPU (NVML) and the CPU packages (RAPL), in joules.

    Whole-device counters: work of other jobs sharing the GPU or the CPU packages in the same
    window is included (run one training job per device for clean per-cell figures).
    ``available`` is False and ``reason`` says why when neither can be read (e.g. no NVIDIA
    GPU and no ``/sys/class/powercap/intel-rapl``); ``begin``/``end`` then do nothing / return
    None. ``describe()`` names what was read, for the result file.

    Raises:
        ImportError: ``zeus`` is not installed (it is in requirements.txt).
    """

    def __init__(self, device: torch.device):
        from zeus.device import get_cpus, get_gpus  # light: the monitor itself is imported only if needed

        self.parts, reasons, gpus, cpus = [], [], [], []
        if device.type == "cuda":
            try:
                get_gpus()
                gpus = [device.index if device.index is not None else torch.cuda.current_device()]
                self.parts.append(f"GPU {gpus[0]} (NVML)")
            except Exception as e:  # zeus raises its own init errors: any of them means no GPU meter
                reasons.append(f"NVML not readable ({type(e).__name__})")
        else:
            reasons.append("training on the CPU")
        try:
            get_cpus()
            cpus = None  # every package
            self.parts.append("CPU packages and DRAM (RAPL)")
        except Exception as e:
            reasons.append(f"no RAPL counters under /sys/class/powercap ({type(e).__name__})")
        self.available = bool(self.parts)
        self.reason = None if self.available else "; ".join(reasons)
        self._monitor = None
        if self.available:
            from zeus.monitor import ZeusMonitor

            # short windows (a mask selection) fall under NVML's counter update period: interpolate
            self._monitor = ZeusMonitor(gpu_indices=gpus, cpu_indices=cpus, approx_instant_energy=True)

    def describe(self) -> dict:
        """``{"meter": "zeus: ..." or None, "reason": None or why nothing is measured}``."""
        return {"meter": ("zeus: " + ", ".join(self.parts) + "; whole-device counters") if self.available else None,
                "reason": self.reason}

    def begin(self, name: str) -> None:
        """Open window ``name`` (Zeus raises ValueError if a window of that name is already open)."""
        if self._monitor is not None:
            self._monitor.begin_window(name)

    def end(self, name: str) -> float | None:
        """Joules since ``begin(name)``: GPU + CPU package + DRAM, or None without a meter."""
        if self._monitor is None:
            return None
        m = self._monitor.end_window(name)
        total = sum(m.gpu_energy.values())
        for part in (m.cpu_energy, m.dram_energy):
            total += sum((part or {}).values())
        return float(total)
