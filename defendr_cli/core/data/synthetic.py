"""The built-in synthetic dataset: procedurally drawn, deterministic per seed, any size.

Each class is a combination of structural factors a CNN has to learn from spatial structure:

* shape of the foreground object (7: disk, square, triangle, ring, cross, diamond, half-disk),
* orientation of the stripes filling it (5 angles: 0, 36, 72, 108, 144 degrees),
* stripe frequency (3: coarse, medium, fine; cycles per image width at any resolution),
* colour layout of the stripes (4 two-colour palettes),
* for classes >= 420, a cross-hatch of a second stripe direction (6 angles) on top.

Class k takes shape = k mod 7, angle = k mod 5, frequency = k mod 3, palette = k mod 4 (moduli
pairwise coprime, so classes 0..419 are all different and any two of the first classes differ
in several factors), and hatch = k // 420 (0 = none). That supports MAX_CLASSES = 2940 classes.

Nuisance variation per image: object position and scale, opacity of the object over the
background (0.45..0.8), small rotation of the shape and of the stripe angle, stripe phase,
colour jitter, a random background colour gradient with faint stripes of a random orientation,
and Gaussian pixel noise. Images are drawn in normalised
coordinates, so the same class looks the same at 16, 32 or 299 pixels.

Image j of class k under seed s depends only on (s, k, j): adding classes or images per class
does not change the others.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from defendr_cli.core.errors import InputError

SHAPES = ("disk", "square", "triangle", "ring", "cross", "diamond", "half-disk")
ANGLES_DEG = (0.0, 36.0, 72.0, 108.0, 144.0)
FREQUENCIES = (2.0, 3.5, 5.5)  # stripe cycles across the image width
FREQUENCY_NAMES = ("coarse", "medium", "fine")
PALETTES = (  # (stripe colour A, stripe colour B), RGB in [0,1]
    ((0.90, 0.15, 0.10), (0.95, 0.85, 0.20)),
    ((0.10, 0.25, 0.85), (0.30, 0.90, 0.95)),
    ((0.10, 0.60, 0.15), (0.95, 0.95, 0.90)),
    ((0.75, 0.15, 0.80), (0.15, 0.10, 0.20)),
)
PALETTE_NAMES = ("red-yellow", "blue-cyan", "green-white", "magenta-black")
OPACITY = (0.45, 0.8)  # object blended over the background: clear to a CNN, yet an 8/255 FGSM fools it
HATCH_ANGLES_DEG = (18.0, 54.0, 90.0, 126.0, 162.0, 45.0)
_BASE_COMBOS = len(SHAPES) * len(ANGLES_DEG) * len(FREQUENCIES) * len(PALETTES)  # 420
MAX_CLASSES = _BASE_COMBOS * (1 + len(HATCH_ANGLES_DEG))  # 2940


@dataclass(frozen=True)
class SyntheticClass:
    """The structural factors of one synthetic class (indices into the tables above)."""

    index: int
    shape: int
    angle: int
    frequency: int
    palette: int
    hatch: int  # 0 = none, else 1 + index into HATCH_ANGLES_DEG

    @property
    def class_id(self) -> str:
        return f"syn{self.index:04d}"

    @property
    def name(self) -> str:
        text = (f"{PALETTE_NAMES[self.palette]} {SHAPES[self.shape]}, "
                f"{FREQUENCY_NAMES[self.frequency]} {ANGLES_DEG[self.angle]:g}deg stripes")
        if self.hatch:
            text += f", hatch {HATCH_ANGLES_DEG[self.hatch - 1]:g}deg"
        return text


def synthetic_class(index: int) -> SyntheticClass:
    """Factors of class `index` (0 <= index < MAX_CLASSES)."""
    if not 0 <= index < MAX_CLASSES:
        raise InputError(f"the synthetic dataset has classes 0..{MAX_CLASSES - 1}, not {index}")
    return SyntheticClass(index, index % len(SHAPES), index % len(ANGLES_DEG), index % len(FREQUENCIES),
                          index % len(PALETTES), index // _BASE_COMBOS)


def synthetic_classes(num_classes: int) -> list[SyntheticClass]:
    if not 1 <= num_classes <= MAX_CLASSES:
        raise InputError(f"the synthetic dataset supports 1..{MAX_CLASSES} classes, not {num_classes}")
    return [synthetic_class(k) for k in range(num_classes)]


def _shape_distance(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (positive inside, in object-radius units) of a shape centred at 0, radius 1."""
    rho = np.sqrt(u * u + v * v)
    name = SHAPES[shape]
    if name == "disk":
        return 1.0 - rho
    if name == "square":
        return 0.8 - np.maximum(np.abs(u), np.abs(v))
    if name == "triangle":  # equilateral, circumradius 1, pointing up (v grows downwards)
        d = 0.5 - v
        for angle in (np.pi / 6, 5 * np.pi / 6):
            d = np.minimum(d, 0.5 + u * np.cos(angle) + v * np.sin(angle))
        return d
    if name == "ring":
        return np.minimum(rho - 0.5, 1.0 - rho)
    if name == "cross":
        bar_h = np.minimum(0.3 - np.abs(v), 0.95 - np.abs(u))
        bar_v = np.minimum(0.3 - np.abs(u), 0.95 - np.abs(v))
        return np.maximum(bar_h, bar_v)
    if name == "diamond":
        return (1.0 - np.abs(u) - np.abs(v)) / np.sqrt(2.0)
    if name == "half-disk":
        return np.minimum(1.0 - rho, v + 0.15)
    raise AssertionError(name)


def _stripes(x: np.ndarray, y: np.ndarray, angle_rad: np.ndarray, freq: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Soft square-wave stripes in [0,1]; x,y (1,H,W) in [-1,1]; per-image params (n,1,1)."""
    t = x * np.cos(angle_rad) + y * np.sin(angle_rad)
    wave = np.sin(np.pi * freq * t + phase)  # freq cycles over the width of 2 units
    return np.clip(2.5 * wave, -1.0, 1.0) * 0.5 + 0.5


def generate_class_images(class_index: int, count: int, image_size: int, seed: int, *, start: int = 0) -> np.ndarray:
    """Images `start .. start+count-1` of one class: uint8 (count, 3, S, S), S = image_size.

    Deterministic in (seed, class_index, image index); vectorised over the images.
    """
    if image_size < 8:
        raise InputError(f"synthetic images need at least 8 pixels per side, not {image_size}")
    cls = synthetic_class(class_index)
    out = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    block = max(1, min(count, (1 << 22) // (image_size * image_size)))  # bound temporary memory
    for begin in range(0, count, block):
        n = min(block, count - begin)
        out[begin:begin + n] = _draw(cls, start + begin, n, image_size, seed)
    return out


def _per_image_rng(seed: int, class_index: int, first: int, n: int) -> list[np.random.Generator]:
    return [np.random.default_rng([seed & 0xFFFFFFFF, class_index, first + i]) for i in range(n)]


def _draw(cls: SyntheticClass, first: int, n: int, size: int, seed: int) -> np.ndarray:
    # All per-image random parameters, drawn from a generator per image (order-independent).
    rngs = _per_image_rng(seed, cls.index, first, n)
    params = np.array([rng.random(24) for rng in rngs], dtype=np.float32)
    p = [params[:, i].reshape(n, 1, 1) for i in range(params.shape[1])]
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * 2.0 - 1.0
    y, x = np.meshgrid(coords, coords, indexing="ij")
    x, y = x[None], y[None]

    # Object pose: centre, radius, rotation.
    cx, cy = (p[0] - 0.5) * 0.7, (p[1] - 0.5) * 0.7
    radius = 0.42 + 0.3 * p[2]
    rot = (p[3] - 0.5) * np.deg2rad(30.0)
    dx, dy = (x - cx) / radius, (y - cy) / radius
    u = dx * np.cos(rot) + dy * np.sin(rot)
    v = -dx * np.sin(rot) + dy * np.cos(rot)
    pixel = 2.0 / size
    inside = np.clip(_shape_distance(cls.shape, u, v) * radius / pixel + 0.5, 0.0, 1.0)

    # Foreground: class stripes (angle, frequency, palette), jittered.
    angle = np.deg2rad(ANGLES_DEG[cls.angle] + (p[4] - 0.5) * 12.0)
    freq = FREQUENCIES[cls.frequency] * (0.9 + 0.2 * p[5])
    stripes = _stripes(x, y, angle, freq, p[6] * 2 * np.pi)
    if cls.hatch:
        hatch_angle = np.deg2rad(HATCH_ANGLES_DEG[cls.hatch - 1] + (p[8] - 0.5) * 12.0)
        stripes = 0.5 * stripes + 0.5 * _stripes(x, y, hatch_angle, freq, p[6] * 3.7)
    colour_a, colour_b = (np.asarray(c, dtype=np.float32).reshape(1, 3, 1, 1) for c in PALETTES[cls.palette])
    jitter = ((params[:, 9:12] - 0.5) * 0.3).reshape(n, 3, 1, 1)
    brightness = (0.8 + 0.35 * p[12]).reshape(n, 1, 1, 1)
    s = stripes[:, None]
    foreground = np.clip((colour_a * s + colour_b * (1 - s) + jitter) * brightness, 0.0, 1.0)

    # Background: random colour gradient with faint stripes at a random orientation.
    base = (0.15 + 0.7 * params[:, 13:16]).reshape(n, 3, 1, 1)
    tilt = (params[:, 16:19] - 0.5).reshape(n, 3, 1, 1) * 0.5
    grad_angle = p[19] * 2 * np.pi
    ramp = (x * np.cos(grad_angle) + y * np.sin(grad_angle))[:, None]
    faint = _stripes(x, y, p[20] * np.pi, 1.5 + 5.0 * p[21], p[22] * 2 * np.pi)[:, None] - 0.5
    background = np.clip(base + tilt * ramp + 0.12 * faint, 0.0, 1.0)

    alpha = inside[:, None] * (OPACITY[0] + (OPACITY[1] - OPACITY[0]) * p[7].reshape(n, 1, 1, 1))
    image = alpha * foreground + (1 - alpha) * background
    sigma = (0.02 + 0.05 * p[23]).reshape(n, 1, 1, 1)
    noise = np.stack([rng.standard_normal(image.shape[1:], dtype=np.float32) for rng in rngs])
    image = image + sigma * noise
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
