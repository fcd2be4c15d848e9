"""Studies behind bench_attacks.py: memory layout, dtype casts and torch.compile of one attack step.

One attack step is what PGD repeats: a forward and backward pass for d(loss)/d(images) with the
model frozen (parameters without grad), under bf16 autocast or in fp32. Each study times the
variants together (round-robin, median) and returns JSON-able figures.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from defendr_cli.core.attacks.base import frozen_model


def timed_together(fns: dict, repeats: int, device: torch.device) -> tuple[dict[str, float], dict[str, object]]:
    """Median seconds per call of each function, calls interleaved round-robin after one warm-up
    each (so a change of machine load hits all of them alike); returns (seconds, last outputs)."""
    outputs = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[name] = fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, outputs


def attack_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, autocast_bf16: bool) -> torch.Tensor:
    """d(summed cross-entropy)/d(images), fp32 gradient of the images' shape (one PGD step's work)."""
    x = images.detach().requires_grad_(True)
    autocast = torch.autocast(images.device.type, dtype=torch.bfloat16) if autocast_bf16 else contextlib.nullcontext()
    with torch.enable_grad():
        with autocast:
            logits = model(x)
        loss = F.cross_entropy(logits.float(), labels, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return grad.float()


def sign_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of gradient entries with the same sign (what FGSM/PGD steps use)."""
    return float((torch.sign(a) == torch.sign(b)).float().mean())


def layout_study(model, images, labels, device, repeats: int) -> dict:
    """One attack step, fp32 and bf16, with model and inputs contiguous (NCHW) vs channels_last."""
    contiguous = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    last = copy.deepcopy(model).to(memory_format=torch.channels_last)
    x_contiguous = images.contiguous()
    x_last = images.contiguous(memory_format=torch.channels_last)
    with frozen_model(contiguous), frozen_model(last):
        t, _ = timed_together({
            "fp32_nchw": lambda: attack_step(contiguous, x_contiguous, labels, False),
            "fp32_channels_last": lambda: attack_step(last, x_last, labels, False),
            "bf16_nchw": lambda: attack_step(contiguous, x_contiguous, labels, True),
            "bf16_channels_last": lambda: attack_step(last, x_last, labels, True)}, repeats, device)
    n = images.shape[0]
    out = {f"{name}_img_s": n / seconds for name, seconds in t.items()}
    for precision in ("fp32", "bf16"):
        ratio = t[f"{precision}_nchw"] / t[f"{precision}_channels_last"]
        out[f"{precision}_channels_last_speedup"] = ratio
        print(f"layout {precision}: channels_last {ratio:.2f}x NCHW per attack step"
              f" ({'channels_last wins' if ratio > 1.03 else 'NCHW wins' if ratio < 0.97 else 'no clear winner'})")
    out["bf16_over_fp32_channels_last"] = t["fp32_channels_last"] / t["bf16_channels_last"]
    out["bf16_over_fp32_nchw"] = t["fp32_nchw"] / t["bf16_nchw"]
    print(f"layout: bf16/fp32 step speed-up {out['bf16_over_fp32_channels_last']:.2f}x channels_last, "
          f"{out['bf16_over_fp32_nchw']:.2f}x NCHW")
    return out


def dtype_cast_study(model, images, labels, device, repeats: int) -> dict:
    """bf16 autocast (fp32 weights cast at every forward) vs a bf16 copy of the model (no casts
    but the input's): step time and gradient-sign agreement with the fp32 step."""
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    x16 = images.to(torch.bfloat16)

    def pure_bf16():
        return attack_step(bf16_model, x16, labels, False)

    with frozen_model(model), frozen_model(bf16_model):
        t, out = timed_together({"autocast": lambda: attack_step(model, images, labels, True),
                                 "bf16_weights": pure_bf16}, repeats, device)
        reference = attack_step(model, images, labels, False)
    ratio = t["autocast"] / t["bf16_weights"]
    figures = {"autocast_img_s": images.shape[0] / t["autocast"], "bf16_weights_img_s": images.shape[0] / t["bf16_weights"],
               "bf16_weights_speedup": ratio,
               "sign_agreement_autocast_vs_fp32": sign_agreement(out["autocast"], reference),
               "sign_agreement_bf16_weights_vs_fp32": sign_agreement(out["bf16_weights"], reference)}
    print(f"dtype casts: bf16 weights (no per-step weight casts) {ratio:.2f}x autocast; gradient-sign agreement with"
          f" fp32 {figures['sign_agreement_bf16_weights_vs_fp32']:.4f} vs autocast"
          f" {figures['sign_agreement_autocast_vs_fp32']:.4f}")
    return figures


def compile_study(model, images, labels, device, repeats: int, *, realistic_images: int, pgd_steps: int = 10) -> dict:
    """torch.compile of the model, bf16 attack step: compile seconds (first call) vs per-step
    saving, and whether it pays back within one PGD run over `realistic_images` images."""
    torch._dynamo.reset()
    compiled = torch.compile(model)
    with frozen_model(model):
        start = time.perf_counter()
        attack_step(compiled, images, labels, True)
        compile_seconds = time.perf_counter() - start
        t, out = timed_together({"eager": lambda: attack_step(model, images, labels, True),
                                 "compiled": lambda: attack_step(compiled, images, labels, True)}, repeats, device)
    n = images.shape[0]
    saving = t["eager"] - t["compiled"]
    steps_in_run = -(-realistic_images // n) * pgd_steps
    payback_steps = compile_seconds / saving if saving > 0 else float("inf")
    figures = {"compile_seconds": compile_seconds, "eager_step_s": t["eager"], "compiled_step_s": t["compiled"],
               "step_speedup": t["eager"] / t["compiled"], "payback_steps": payback_steps,
               "realistic_run": {"images": realistic_images, "batch": n, "pgd_steps": pgd_steps, "steps": steps_in_run},
               "pays_back_in_one_run": payback_steps <= steps_in_run,
               "max_abs_grad_diff": float((out["eager"] - out["compiled"]).abs().max())}
    print(f"torch.compile: {compile_seconds:.1f} s to compile, step {figures['step_speedup']:.2f}x eager; pays back after"
          f" {payback_steps:.0f} steps, one PGD-10 run over {realistic_images} images has {steps_in_run}:"
          f" {'pays back' if figures['pays_back_in_one_run'] else 'does not pay back'}")
    return figures
