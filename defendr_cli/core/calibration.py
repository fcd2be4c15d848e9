"""The machine's own yardstick: fp32 and bf16 matmul and convolution throughput, measured in seconds.

Figures from different machines only compare once each is divided by what its hardware does on
plain kernels. `calibrate()` measures that (about 10-20 s on a 2-core CPU) and returns a JSON-able
dict that benchmarks and the reproduce report record beside their own figures:

    device, device_name (CPU model or GPU name), threads, torch, cpu_flags {amx_bf16, amx_tile,
    avx512_bf16, avx512f, avx2} (CPU only), matmul {fp32_gflops, bf16_gflops, size},
    conv {fp32_gflops, bf16_gflops, shape, channels_last}, bf16_fp32_matmul_ratio,
    bf16_fp32_conv_ratio, seconds

GFLOP/s count 2 FLOPs per multiply-add; each figure is the best of 3 timing windows, fp32 and bf16
windows alternating, so a shared machine's load disturbs the ratio as little as it can. The convolution is a ResNet-like 3x3 layer (64 -> 64
channels, 56x56 feature map, stride 1, padding 1) in channels_last, forward only. bf16 figures use
bf16 tensors directly (no autocast), which is what autocast dispatches to inside a model.
"""

from __future__ import annotations

import functools
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def cpu_model_and_flags(cpuinfo: Path | str = "/proc/cpuinfo") -> tuple[str, dict[str, bool]]:
    """('model name' of the first CPU, {flag: present} for CPU_FLAGS); ('', all False) when unreadable."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return platform.processor() or platform.machine(), {flag: False for flag in CPU_FLAGS}
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model or platform.machine(), {flag: flag in flags for flag in CPU_FLAGS}


def _seconds_per_call(fns: dict[str, Callable[[], object]], device: torch.device,
                      min_seconds: float) -> dict[str, float]:
    """Best seconds of one call of each function, over 3 timing windows of >= min_seconds / 3 each,
    windows of the functions alternating (so a shared machine's load changes hit both alike; the
    best window is the one least disturbed)."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    calls = {}
    for name, fn in fns.items():
        fn()
        fn()
        sync()
        start = time.perf_counter()
        fn()
        sync()
        calls[name] = max(1, int(min_seconds / 3 / max(time.perf_counter() - start, 1e-6)))
    best = {name: float("inf") for name in fns}
    for _ in range(3):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                fn()
            sync()
            best[name] = min(best[name], (time.perf_counter() - start) / calls[name])
    return best


def _operands(dtype: torch.dtype, device: torch.device, size: int, conv_shape: tuple[int, int, int],
              batch: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    channels, height, width = conv_shape
    x = torch.randn(batch, channels, height, width, generator=generator)
    weight = torch.randn(channels, channels, 3, 3, generator=generator).mul_(0.05)
    return {"a": torch.randn(size, size, generator=generator).to(device, dtype),
            "b": torch.randn(size, size, generator=generator).to(device, dtype),
            "x": x.to(device, dtype).contiguous(memory_format=torch.channels_last),
            "w": weight.to(device, dtype).contiguous(memory_format=torch.channels_last)}


def calibrate(device: str | torch.device = "cpu", threads: int | None = None, *,
              min_seconds: float = 1.5) -> dict:
    """Measure fp32/bf16 matmul and conv throughput on `device` (see the module docstring).

    threads: torch intra-op threads for the measurement (restored afterwards); None keeps the
    current setting. min_seconds: timed seconds per figure (4 figures, plus warm-ups).
    """
    device = torch.device(device)
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    started = time.perf_counter()
    try:
        on_gpu = device.type == "cuda"
        size = 4096 if on_gpu else 1024
        conv_shape, conv_batch = (64, 56, 56), (64 if on_gpu else 4)
        ops = {name: _operands(dtype, device, size, conv_shape, conv_batch)
               for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        with torch.no_grad():
            mm = _seconds_per_call({name: (lambda o=o: torch.mm(o["a"], o["b"])) for name, o in ops.items()},
                                   device, min_seconds)
            conv = _seconds_per_call({name: (lambda o=o: F.conv2d(o["x"], o["w"], padding=1)) for name, o in ops.items()},
                                     device, min_seconds)
        conv_flops = 2 * conv_batch * conv_shape[0] ** 2 * conv_shape[1] * conv_shape[2] * 9
        figures = {
            "matmul": {"size": size, **{f"{name}_gflops": 2 * size**3 / seconds / 1e9 for name, seconds in mm.items()}},
            "conv": {"shape": [conv_batch, *conv_shape], "kernel": 3, "channels_last": True,
                     **{f"{name}_gflops": conv_flops / seconds / 1e9 for name, seconds in conv.items()}},
        }
        if on_gpu:
            name, flags = torch.cuda.get_device_name(device), {}
        else:
            name, flags = cpu_model_and_flags()
        return {
            "device": str(device), "device_name": name, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "cpu_flags": flags, **figures,
            "bf16_fp32_matmul_ratio": figures["matmul"]["bf16_gflops"] / figures["matmul"]["fp32_gflops"],
            "bf16_fp32_conv_ratio": figures["conv"]["bf16_gflops"] / figures["conv"]["fp32_gflops"],
            "seconds": time.perf_counter() - started,
        }
    finally:
        torch.set_num_threads(previous_threads)


@functools.lru_cache(maxsize=8)
def _cached(device: str, threads: int, min_seconds: float) -> dict:
    return calibrate(device, threads, min_seconds=min_seconds)


def cached_calibration(device: str | torch.device = "cpu", *, min_seconds: float = 0.4) -> dict:
    """`calibrate()` once per process for (device, current thread count, min_seconds): a short run
    (min_seconds 0.4: about 3-5 s on a 2-core CPU) for reports that record the machine beside their
    times. Returns a copy, so a caller may add keys."""
    return dict(_cached(str(torch.device(device)), torch.get_num_threads(), float(min_seconds)))


def calibration_line(figures: dict) -> str:
    """One line: 'AMD EPYC, 2 threads: matmul fp32 150 / bf16 420 GFLOP/s (2.80x), conv ...'."""
    mm, conv = figures["matmul"], figures["conv"]
    flags = [flag for flag, present in figures.get("cpu_flags", {}).items() if present and flag.startswith(("amx", "avx512_bf16"))]
    return (f"{figures['device_name']}, {figures['threads']} threads{' (' + ', '.join(flags) + ')' if flags else ''}: "
            f"matmul fp32 {mm['fp32_gflops']:.0f} / bf16 {mm['bf16_gflops']:.0f} GFLOP/s "
            f"({figures['bf16_fp32_matmul_ratio']:.2f}x), conv fp32 {conv['fp32_gflops']:.0f} / "
            f"bf16 {conv['bf16_gflops']:.0f} GFLOP/s ({figures['bf16_fp32_conv_ratio']:.2f}x)")
