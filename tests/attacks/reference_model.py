"""The fixed small model and 200 test images on which Defendr's attacks are compared with torchattacks."""

from __future__ import annotations

import torch
from torch import nn

NUM_CLASSES = 5
EPS = 8 / 255


def comparison_model(seed: int = 0, steps: int = 150, n_test: int = 200,
                     num_classes: int = NUM_CLASSES) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A one-conv CNN trained for `steps` Adam steps on a separable 5-class (`num_classes`) 8x8 problem
    (prototype plus noise); with 5 classes clean accuracy 100%, robust accuracy at 8/255 about 15-20%
    (APGD). Returns (model, x, y)."""
    gen = torch.Generator().manual_seed(seed)
    prototypes = torch.rand(num_classes, 3, 8, 8, generator=gen)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(0, num_classes, (n,), generator=gen)
        x = (0.5 + 0.15 * (prototypes[y] - 0.5) + 0.25 * (torch.rand(n, 3, 8, 8, generator=gen) - 0.5)).clamp(0, 1)
        return x, y

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, num_classes))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    x_train, y_train = sample(512)
    for _ in range(steps):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x_train), y_train).backward()
        optimizer.step()
    x_test, y_test = sample(n_test)
    return model.eval(), x_test, y_test


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy in percent."""
    with torch.no_grad():
        return (model(images).argmax(dim=1) == labels).float().mean().item() * 100.0
