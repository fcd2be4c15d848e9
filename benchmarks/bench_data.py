"""Data-path throughput: (a) `prepare` from ~500x375 JPEGs vs a naive one-process loop;
(b) SplitReader shuffled batches of 64 at 299x299 from a warm cache.

    .venv/bin/python benchmarks/bench_data.py [--images 400] [--workers N] [--reader-images 2000]

Prints the figures and saves them, with the machine's calibration (core.calibration), to
benchmarks/results/bench_data.json. Targets (2-core machine):
prepare >= 3x the naive loop; reader >= 5,000 images/s warm.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from defendr_cli.core.calibration import calibrate, calibration_line
from defendr_cli.core.io.cache import CacheWriter
from defendr_cli.core.data.imagenet_prepare import default_workers, prepare_imagenet
from defendr_cli.core.data.imagenet_source import list_classes, list_images
from defendr_cli.core.io.reader import SplitReader
from defendr_cli.core.memory import tune_allocator
from defendr_cli.core.workspace import Workspace

RESULTS = Path(__file__).resolve().parent / "results" / "bench_data.json"


def make_jpeg_folder(root: Path, classes: int, per_class: int, seed: int = 0) -> Path:
    """ImageNet-like folder: 500x375 JPEGs (quality 90) with smooth structure plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:375, 0:500].astype(np.float32)
    for c in range(classes):
        folder = root / "train" / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            f = rng.uniform(0.01, 0.08, 3)
            image = 127 + 100 * np.sin(xx[..., None] * f + yy[..., None] * f[::-1] + rng.uniform(0, 6, 3))
            image += rng.normal(0, 12, image.shape)
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"n{c:08d}_{i}.JPEG", quality=90)
    return root / "train"


def naive_loop(folder: Path, size: int, resample: Image.Resampling | None = None) -> tuple[float, int]:
    """PIL open -> convert RGB -> resize at full resolution, one process (the baseline).

    resample None = Pillow's default filter for resize (bicubic), what a naive loop gets.
    """
    started, count = time.perf_counter(), 0
    for wnid in list_classes(folder):
        for path in list_images(folder / wnid):
            with Image.open(path) as image:
                rgb = image.convert("RGB")
                array = np.asarray(rgb.resize((size, size)) if resample is None else rgb.resize((size, size), resample))
            _ = np.ascontiguousarray(array.transpose(2, 0, 1))
            count += 1
    return time.perf_counter() - started, count


def bench_prepare(tmp: Path, images: int, workers: int, size: int = 299) -> dict:
    classes = 10
    per_class = max(3, images // classes)
    folder = make_jpeg_folder(tmp / "src", classes, per_class)
    naive_loop(folder, size)  # warm the page cache for both contenders
    naive_s, count = naive_loop(folder, size)
    bilinear_s, _ = naive_loop(folder, size, Image.Resampling.BILINEAR)
    ws = Workspace(tmp / "ws")
    result = prepare_imagenet(ws, folder, classes=classes, per_class=per_class, image_size=size, workers=workers)
    one = prepare_imagenet(ws, folder, classes=classes, per_class=per_class, image_size=size, workers=1,
                           name="one-worker")
    naive_ips, prepare_ips = count / naive_s, result.images / result.seconds
    return {"images": count, "source_size": "500x375 JPEG q90", "image_size": size, "workers": workers,
            "naive_images_per_s": round(naive_ips, 1), "naive_bilinear_images_per_s": round(count / bilinear_s, 1),
            "prepare_images_per_s": round(prepare_ips, 1),
            "prepare_one_worker_images_per_s": round(one.images / one.seconds, 1),
            "speedup": round(prepare_ips / naive_ips, 2)}


def bench_reader(tmp: Path, rows: int, batch: int = 64, size: int = 299, epochs: int = 2) -> dict:
    path = tmp / "reader.h5"
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, (250, 3, size, size), dtype=np.uint8)
    with CacheWriter(path, image_size=size, resize="stretch", class_ids=["a", "b"], class_names=["a", "b"],
                     split_counts={"train": rows}, seed=0, source="benchmark", source_kind="bench") as writer:
        for start in range(0, rows, 250):
            n = min(250, rows - start)
            writer.append("train", block[:n], np.arange(n) % 2, [str(start + i) for i in range(n)])
    out = {"rows": rows, "batch_size": batch, "image_size": size, "file_MiB": round(path.stat().st_size / 2**20)}
    for mode, in_memory in (("memory", True), ("stream", False)):  # stream: pread (core/io/reader.py)
        with SplitReader(path, "train", in_memory=in_memory) as reader:
            for _ in reader.iter_batches(batch, shuffle=True, seed=99):  # warm: load / page cache
                pass
            buffer = torch.empty((batch, 3, size, size), dtype=torch.float32)
            readers = {"uint8": reader.read_uint8, "float": reader.read,
                       "float_reused_buffer": lambda idx: reader.read(idx, out=buffer)}
            started, count = time.perf_counter(), 0
            for epoch in range(epochs):  # the batch reader itself (what training and evaluation use)
                for batch_data in reader.iter_batches(batch, shuffle=True, seed=epoch):
                    count += len(batch_data.labels)
            out[f"{mode}_iter_batches_images_per_s"] = round(count / (time.perf_counter() - started), 1)
            for kind, read in readers.items():
                started, count = time.perf_counter(), 0
                for epoch in range(epochs):
                    order = np.random.default_rng(epoch).permutation(len(reader))
                    for start in range(0, len(order), batch):
                        idx = order[start:start + batch]
                        data = read(idx)
                        count += len(data)
                out[f"{mode}_{kind}_images_per_s"] = round(count / (time.perf_counter() - started), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="JPEGs in the prepare benchmark")
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--reader-images", type=int, default=2000)
    parser.add_argument("--no-tune-allocator", action="store_true",
                        help="skip the glibc mmap-threshold tuning the CLI applies at start-up")
    args = parser.parse_args()
    tuned = False if args.no_tune_allocator else tune_allocator()
    calibration = calibrate("cpu")
    print(f"calibration: {calibration_line(calibration)}")
    print(f"allocator tuned as the CLI does (core/memory.py): {tuned}")
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        prepare = bench_prepare(Path(tmp), args.images, args.workers)
        print(f"prepare: {prepare['images']} x {prepare['source_size']} -> {prepare['image_size']}px, "
              f"{prepare['workers']} workers: {prepare['prepare_images_per_s']:.0f} images/s vs naive "
              f"{prepare['naive_images_per_s']:.0f} images/s ({prepare['speedup']:.2f}x; target >= 3x); "
              f"naive with bilinear {prepare['naive_bilinear_images_per_s']:.0f}/s, prepare with 1 worker "
              f"{prepare['prepare_one_worker_images_per_s']:.0f}/s")
        reader = bench_reader(Path(tmp), args.reader_images)
        for mode in ("memory", "stream"):
            print(f"reader ({mode}, shuffled batches of 64 at 299px, warm): "
                  f"{reader[f'{mode}_uint8_images_per_s']:.0f} images/s uint8, "
                  f"{reader[f'{mode}_float_images_per_s']:.0f} images/s float [0,1], "
                  f"{reader[f'{mode}_float_reused_buffer_images_per_s']:.0f} images/s float into a reused buffer, "
                  f"{reader[f'{mode}_iter_batches_images_per_s']:.0f} images/s float from iter_batches (target >= 5000)")
    payload = {"benchmark": "bench_data", "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "machine": {"cpus": default_workers(), "platform": platform.platform(),
                           "load_average_1min": round(os.getloadavg()[0], 2),
                           "torch_threads": torch.get_num_threads(), "allocator_tuned": tuned},
               "calibration": calibration, "prepare": prepare, "reader": reader}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
