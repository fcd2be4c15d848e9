"""Device, precision and seeding, chosen once at the command's edge and passed down.

Library code never calls `.cuda()`: it receives a `Runtime` (or a torch.device) and uses
`runtime.autocast()` around forward/backward passes.
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from defendr_cli.core.errors import InputError

PrecisionName = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
MEMORY_FORMATS: tuple[str, ...] = ("auto", "channels_last", "contiguous")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available else cpu; 'cpu', 'cuda', 'cuda:1' as given (checked)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device '{name}': use auto, cpu or cuda[:N]") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name}: no CUDA GPU is available here (found torch {torch.__version__} "
                         f"built for CUDA {torch.version.cuda or 'none'}, {torch.cuda.device_count()} GPU(s) "
                         f"visible); use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device '{name}': use auto, cpu or cuda[:N]")
    return device


@dataclass(frozen=True)
class Runtime:
    """Where and how tensors are computed.

    device: torch device for models and batches.
    precision: 'fp32' (no autocast), 'bf16' or 'fp16' (autocast for forward/backward;
        parameters and perturbed images stay fp32).
    memory_format: 'auto' (channels_last on CUDA and for bf16, see `channels_last`),
        'channels_last' (always; small fp32 convolutions on the CPU run ~1.2-1.45x faster with it)
        or 'contiguous' (never).
    """

    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    memory_format: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise InputError(f"unknown precision '{self.precision}': use one of {', '.join(PRECISIONS)}")
        if self.precision == "fp16" and self.device.type == "cpu":
            raise InputError("--precision fp16 needs a CUDA device; on the CPU use bf16")
        if self.memory_format not in MEMORY_FORMATS:
            raise InputError(f"unknown memory format '{self.memory_format}': use one of {', '.join(MEMORY_FORMATS)}")

    @classmethod
    def create(cls, device: str = "auto", precision: str = "fp32", memory_format: str = "auto") -> "Runtime":
        return cls(resolve_device(device), precision, memory_format)

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return _AUTOCAST_DTYPES.get(self.precision)

    @property
    def channels_last(self) -> bool:
        """channels_last memory format: on CUDA (tensor cores) and for bf16 on the CPU, where the
        oneDNN bf16 convolutions run ~1.2x faster with it (measured in benchmarks/bench_attacks.py);
        `memory_format` 'channels_last' / 'contiguous' forces it on / off."""
        if self.memory_format != "auto":
            return self.memory_format == "channels_last"
        return self.device.type == "cuda" or self.precision == "bf16"

    @property
    def needs_grad_scaler(self) -> bool:
        return self.precision == "fp16"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Context for forward/backward: torch.autocast for bf16/fp16, a no-op for fp32."""
        dtype = self.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move a batch of images (N,C,H,W) to the device, in channels_last when `channels_last`."""
        tensor = tensor.to(self.device, non_blocking=True)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def prepare_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a model to the device (channels_last when `channels_last`). Parameters stay fp32."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch (CPU and CUDA); return a CPU torch.Generator seeded likewise."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator
