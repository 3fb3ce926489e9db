"""The hardware babyface runs on, and the number format and memory layout chosen for it at run time.

The CPU can change from one day to the next (an AVX2-only EPYC one day, AVX-512 with bf16 and VNNI the next, a
laptop with neither), so nothing here is written into a recipe: ``choose_precision`` reads the CPU's flags (or asks
CUDA) every time, and ``choose_channels_last`` times a few steps of the actual model in both layouts and remembers
the faster one for that CPU, model and shape. Benchmarks print ``describe_hardware()`` above every table.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from babyface.errors import BabyfaceError

log = logging.getLogger("babyface")

PRECISIONS = ("auto", "fp32", "bf16")
LAYOUTS = ("auto", "on", "off")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 (Linux /proc/cpuinfo names) with native bf16 dot products
ARM_BF16_FLAGS = ("bf16",)  # Arm v8.6 'Features'
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")  # what onnxruntime's int8 kernels speed up with
CHANNELS_LAST_GAIN = 0.95  # channels-last is chosen only when its step takes at most this share of NCHW's time
PROBE_STEPS = 5  # timed steps of each layout, interleaved (the fastest of each counts)


@dataclass(frozen=True)
class CpuInfo:
    """What the CPU says about itself: model name, feature flags, and torch's vector capability."""

    model: str
    flags: frozenset[str]
    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    cores: int

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in BF16_FLAGS) or (self.arm and any(f in self.flags for f in ARM_BF16_FLAGS))

    @property
    def int8_dot(self) -> bool:
        return any(f in self.flags for f in INT8_FLAGS)

    @property
    def amx(self) -> bool:
        return "amx_tile" in self.flags

    @property
    def arm(self) -> bool:
        return platform.machine().lower() in ("aarch64", "arm64")

    def line(self) -> str:
        def yes(flag: bool) -> str:
            return "yes" if flag else "no"

        return (f"CPU {self.model} ({self.cores} cores, torch {torch.get_num_threads()} threads): native bf16 "
                f"{yes(self.native_bf16)}, int8 VNNI {yes(self.int8_dot)}, AMX {yes(self.amx)}; torch capability "
                f"{self.capability}; torch {torch.__version__}")


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """Model name and feature flags from the text of /proc/cpuinfo (x86 'flags', Arm 'Features')."""
    model, flags = "", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return model or _platform_name(), flags


def _platform_name() -> str:
    return platform.processor() or platform.machine() or "unknown CPU"


def _read_cpuinfo() -> tuple[str, frozenset[str]]:
    """/proc/cpuinfo on Linux; elsewhere the platform's processor name and no flags (so auto picks fp32)."""
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return _platform_name(), frozenset()


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    model, flags = _read_cpuinfo()
    return CpuInfo(model, flags, torch.backends.cpu.get_cpu_capability(), os.cpu_count() or 1)


def cuda_line(device: torch.device) -> str:
    props = torch.cuda.get_device_properties(device)
    return (f"GPU {props.name} ({props.total_memory / 2**30:.0f} GiB, compute capability {props.major}.{props.minor}): "
            f"bf16 {'yes' if torch.cuda.is_bf16_supported() else 'no'}")


def describe_hardware(device: torch.device | None = None) -> str:
    """One line (two with a GPU) naming what a measurement ran on: benchmarks print it above their tables."""
    lines = [cpu_info().line()]
    device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        lines.append(cuda_line(device))
    return "\n".join(lines)


# ---------------------------------------------------------------- number format

@dataclass(frozen=True)
class Precision:
    """The number format of a run: fp32, or bf16/fp16 autocast (weights stay fp32; fp16 needs a gradient scaler)."""

    name: str  # fp32 | bf16 | fp16
    reason: str = ""

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.name)

    @property
    def needs_grad_scaler(self) -> bool:
        return self.name == "fp16"

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """Mixed precision for the forward pass on ``device`` (a no-op in fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)


def choose_precision(requested: str, device: torch.device, cpu: CpuInfo | None = None, warn: bool = True) -> Precision:
    """--precision resolved for ``device``: auto = bf16 where the hardware computes it natively (AVX-512 BF16 or AMX
    on a CPU; a CUDA GPU that supports it, else fp16), fp32 elsewhere. An explicit bf16 that would be emulated is kept
    with one warning saying what auto would pick."""
    if requested not in PRECISIONS:
        raise BabyfaceError(f"--precision {requested!r}: choose one of {', '.join(PRECISIONS)}")
    auto = _auto_precision(device, cpu)
    if requested == "auto":
        return auto
    if requested == "fp32":
        return Precision("fp32", "asked for (--precision fp32)")
    if auto.name != "bf16" and warn:
        log.warning("WARNING: --precision bf16: %s, so bf16 is emulated and can be several times slower than fp32; "
                    "--precision auto would pick %s", _no_bf16_reason(device, cpu), auto.name)
    return Precision("bf16", "asked for (--precision bf16)" + ("" if auto.name == "bf16" else "; emulated on this hardware"))


def _auto_precision(device: torch.device, cpu: CpuInfo | None) -> Precision:
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bf16", "auto: this CUDA GPU computes bf16 natively")
        return Precision("fp16", "auto: this CUDA GPU has no bf16; fp16 with a gradient scaler")
    if device.type != "cpu":
        return Precision("fp32", f"auto: no mixed precision on {device.type}")
    cpu = cpu or cpu_info()
    if cpu.native_bf16:
        flags = ", ".join(f for f in (*BF16_FLAGS, *ARM_BF16_FLAGS) if f in cpu.flags)
        return Precision("bf16", f"auto: the CPU computes bf16 natively ({flags})")
    return Precision("fp32", f"auto: {_no_bf16_reason(device, cpu)}")


def _no_bf16_reason(device: torch.device, cpu: CpuInfo | None) -> str:
    if device.type == "cuda":
        return "this CUDA GPU has no native bf16"
    return f"this CPU ({(cpu or cpu_info()).model}) has no native bf16 (AVX-512 BF16 or AMX)"


# ---------------------------------------------------------------- memory layout

def layout_cache_file(folder: Path | None) -> Path | None:
    return folder / "layouts.json" if folder else None


def choose_channels_last(requested: str, model: nn.Module, shape: tuple[int, ...], precision: Precision,
                         device: torch.device, train: bool, cache: Path | None = None) -> tuple[bool, str]:
    """--channels-last resolved: on, off, or auto = whichever layout ran ``model`` faster on inputs of ``shape``
    (PROBE_STEPS timed steps of each on a copy of the model, global random state untouched). The answer is kept in
    ``cache`` per CPU, torch version, model, shape, precision and mode, so that repeated runs (and --seed) on one
    machine use one layout."""
    if requested not in LAYOUTS:
        raise BabyfaceError(f"--channels-last {requested!r}: choose one of {', '.join(LAYOUTS)}")
    if requested != "auto":
        return requested == "on", f"asked for (--channels-last {requested})"
    if len(shape) != 4:
        return False, "auto: not an image model"
    key = _layout_key(model, shape, precision, device, train)
    known = _read_layouts(cache).get(key)
    if isinstance(known, dict) and isinstance(known.get("channels_last"), bool):
        return known["channels_last"], f"auto: {known.get('reason', 'measured earlier on this machine')}"
    nchw, nhwc = _time_layouts(model, shape, precision, device, train)
    chosen = nhwc <= CHANNELS_LAST_GAIN * nchw
    reason = (f"measured {nhwc * 1e3:.1f} ms channels-last vs {nchw * 1e3:.1f} ms NCHW per "
              f"{'training step' if train else 'batch'} of {shape[0]}")
    _write_layout(cache, key, {"channels_last": chosen, "reason": reason})
    return chosen, f"auto: {reason}"


def _layout_key(model: nn.Module, shape: tuple[int, ...], precision: Precision, device: torch.device, train: bool) -> str:
    arch = getattr(model, "arch_name", type(model).__name__)
    kwargs = json.dumps(getattr(model, "arch_kwargs", {}), sort_keys=True, default=str)
    where = cpu_info().model if device.type == "cpu" else torch.cuda.get_device_name(device)
    return "|".join([where, torch.__version__, str(torch.get_num_threads()), device.type, arch, kwargs,
                     "x".join(map(str, shape)), precision.name, "train" if train else "eval"])


def _read_layouts(cache: Path | None) -> dict:
    if cache is None:
        return {}
    try:
        values = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def _write_layout(cache: Path | None, key: str, value: dict) -> None:
    """Best effort: a cache that cannot be written only means measuring again next time."""
    if cache is None:
        return
    values = _read_layouts(cache) | {key: value}
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(values, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, cache)
    except OSError:
        pass


def _time_layouts(model: nn.Module, shape: tuple[int, ...], precision: Precision, device: torch.device,
                  train: bool) -> tuple[float, float]:
    """Fastest seconds of one forward (+ backward when ``train``) pass of a copy of ``model`` in NCHW and in
    channels-last, the two timed in turn so that a passing load on the machine slows both alike."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        steps = [_layout_step(model, shape, precision, device, train, layout)
                 for layout in (torch.contiguous_format, torch.channels_last)]
        for step in steps:  # warm-up: oneDNN picks its kernels on the first calls
            step()
            step()
        best = [float("inf"), float("inf")]
        for _ in range(PROBE_STEPS):
            for i, step in enumerate(steps):
                start = time.perf_counter()
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                best[i] = min(best[i], time.perf_counter() - start)
    return best[0], best[1]


def _layout_step(model: nn.Module, shape: tuple[int, ...], precision: Precision, device: torch.device, train: bool,
                 layout: torch.memory_format) -> Callable[[], None]:
    probe = copy.deepcopy(model).to(device, memory_format=layout).train(train)
    x = torch.randn(shape, device=device).contiguous(memory_format=layout)
    return _train_step(probe, x, precision, device) if train else _eval_step(probe, x, precision, device)


def _train_step(model: nn.Module, x: torch.Tensor, precision: Precision, device: torch.device) -> Callable[[], None]:
    def step() -> None:
        with precision.autocast(device):
            out = model(x)
        out.float().sum().backward()
        model.zero_grad(set_to_none=True)

    return step


def _eval_step(model: nn.Module, x: torch.Tensor, precision: Precision, device: torch.device) -> Callable[[], None]:
    def step() -> None:
        with torch.no_grad(), precision.autocast(device):
            model(x)

    return step
