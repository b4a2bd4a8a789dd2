"""Throughput of the feature encoders and of a fully cached re-run.

Usage::

    python benchmarks/features_bench.py [--n 64] [--threads 2] [--batch-size 16] [--resnet-dir DIR]

Writes N synthetic scenes (Pillow-drawn shapes, 800×600 px) with captions and object AOIs into a
temporary study, encodes them with the packaged MiniLM and EfficientNet-Lite0 (and a local ResNet
when ``--resnet-dir`` is given) into an empty cache, then runs again on the warm cache. Prints one
JSON line per encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Offline mode is set before transformers is imported (through pov_pipeline.features).
from pov_pipeline.features import (
    ImageEncoderConfig,
    TextEncoderConfig,
    encode_image_features,
    encode_text_features,
)

WORDS = ["dog", "cat", "ball", "lamp", "chair", "table", "bicycle", "umbrella", "teapot", "guitar"]


def make_study(study: Path, n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """N scenes with three shapes each, their captions and rect/polygon/ellipse object AOIs."""
    rng = np.random.default_rng(seed)
    (study / "images").mkdir(parents=True, exist_ok=True)
    stimuli, aois = [], []
    for i in range(n):
        sid = f"b{i:04d}"
        img = Image.new("RGB", (800, 600), tuple(int(v) for v in rng.integers(150, 256, 3)))
        draw = ImageDraw.Draw(img)
        names = rng.choice(WORDS, 3, replace=False)
        for j, name in enumerate(names):
            x0, y0 = int(rng.integers(0, 560)), int(rng.integers(0, 400))
            x1, y1 = x0 + int(rng.integers(80, 240)), y0 + int(rng.integers(80, 200))
            color = tuple(int(v) for v in rng.integers(0, 200, 3))
            shape = ("rect", "polygon", "ellipse")[j]
            pts = None
            if shape == "rect":
                draw.rectangle([x0, y0, x1, y1], fill=color)
            elif shape == "polygon":
                pts = [x0, y1, (x0 + x1) / 2, y0, x1, y1]
                draw.polygon(pts, fill=color)
            else:
                draw.ellipse([x0, y0, x1, y1], fill=color)
                pts = [(x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2]
            # Shown at (560, 100) and the file's own size on a 1920×1080 screen.
            sx = [v + 560 if k % 2 == 0 else v + 100 for k, v in enumerate(pts)] if pts else None
            aois.append(
                {
                    "stimulus_id": sid,
                    "aoi_id": f"obj:{name}",
                    "aoi_kind": "object",
                    "label": str(name),
                    "shape": shape,
                    "x0_px": x0 + 560.0,
                    "y0_px": y0 + 100.0,
                    "x1_px": x1 + 560.0,
                    "y1_px": y1 + 100.0,
                    "points_px": sx,
                    "word_index": -1,
                    "is_central": j == 0,
                }
            )
        img.save(study / "images" / f"{sid}.png")
        caption = f"A {names[0]} next to the {names[1]}, and maybe a {names[2]} ({i})."
        stimuli.append(
            {
                "stimulus_id": sid,
                "image_file": f"images/{sid}.png",
                "caption": caption,
                "image_left_px": 560,
                "image_top_px": 100,
                "image_width_px": 800,
                "image_height_px": 600,
            }
        )
    return pd.DataFrame(stimuli), pd.DataFrame(aois)


def main() -> None:
    """Run the benchmark and print one JSON line per encoder."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--resnet-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stimuli, aois = make_study(root / "study", args.n, args.seed)
        runs: list[tuple[str, object]] = [
            ("text:minilm", TextEncoderConfig(batch_size=32, device=args.device, num_threads=args.threads)),
            (
                "image:efficientnet_lite0",
                ImageEncoderConfig(batch_size=args.batch_size, device=args.device, num_threads=args.threads),
            ),
        ]
        if args.resnet_dir:
            runs.append(
                (
                    "image:resnet",
                    ImageEncoderConfig(
                        kind="resnet",
                        model_dir=args.resnet_dir,
                        batch_size=args.batch_size,
                        device=args.device,
                        num_threads=args.threads,
                    ),
                )
            )
        for name, cfg in runs:
            cache = root / "cache" / name.replace(":", "_")
            timings = []
            for _ in range(2):
                t0 = time.perf_counter()
                if isinstance(cfg, TextEncoderConfig):
                    _, stats = encode_text_features(stimuli, aois, cfg, cache)
                else:
                    _, stats = encode_image_features(stimuli, aois, root / "study", cfg, cache)
                timings.append((time.perf_counter() - t0, stats))
            (cold_s, cold), (warm_s, warm) = timings
            print(
                json.dumps(
                    {
                        "encoder": name,
                        "n_stimuli": args.n,
                        "device": cold["device"],
                        "threads": args.threads,
                        "dim": cold["dim"],
                        "cold_seconds": round(cold_s, 3),
                        "stimuli_per_s": round(args.n / cold_s, 2),
                        "cold_encoded": cold["encoded"],
                        "cached_rerun_seconds": round(warm_s, 3),
                        "cached_rerun_encoded": warm["encoded"],
                        "cached_rerun_forward_passes": warm["forward_passes"],
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
