"""Equivalence of the Keras engine's twins with imgaug, op by op and magnitude by magnitude (issue 25, item 2).

The same images (32x32 crops of scikit-learn's two bundled photos) go through each op at
probability 1 on both engines (``Policy([[(op, 1, m)]]).augment(images, seed, engine=...)``):

* an op is **deterministic** at a magnitude when imgaug gives the same output under two seeds;
  the engines are then compared pixel by pixel: the mean absolute difference (0-255 scale) must be
  at most ``--pixel-tolerance`` (default 1.0, about one grey level);
* otherwise the op is **random** and the comparison is of distributions: each image's summary is
  its mean absolute change from the original (0-255), and the two engines' summaries over the
  images must pass a two-sample Kolmogorov-Smirnov test (p >= ``--alpha``, default 0.01).

A twin that passes at every magnitude is "equivalent"; otherwise it is listed as "approximate"
with its measured differences. Run from the repository root (about 2 minutes on 2 idle cores)::

    .venv/bin/python benchmarks/engine_equivalence.py
    .venv/bin/python benchmarks/engine_equivalence.py --size 224 --images 96 \
        --out benchmarks/results/engine_equivalence_224.json

writes ``benchmarks/results/engine_equivalence.json``; ``docs/gen_ops_page.py`` turns it into the
table of ``docs/ops.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MAGNITUDES = (0.25, 0.5, 0.75, 1.0)
OUT = ROOT / "benchmarks" / "results" / "engine_equivalence.json"


def sample_images(count: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """``count`` random ``size`` x ``size`` crops (resized from 64-160 px squares) of the bundled photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_image

    photos = [load_sample_image("china.jpg"), load_sample_image("flower.jpg")]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        photo = photos[i % 2]
        side = int(rng.integers(64, 161))
        y, x = rng.integers(0, photo.shape[0] - side), rng.integers(0, photo.shape[1] - side)
        out.append(np.asarray(Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)))
    return np.stack(out)


def compare(op: str, magnitude: float, images: np.ndarray, alpha: float = 0.01,
            pixel_tolerance: float = 1.0) -> dict:
    """One op at one magnitude through both engines: the statistic, its value and whether it passes."""
    from scipy.stats import ks_2samp

    from keras_augtune import Policy

    policy = Policy([[(op, 1.0, magnitude)]])
    reference = policy.augment(images, seed=1).astype(np.float64)
    again = policy.augment(images, seed=2).astype(np.float64)
    twin = policy.augment(images, seed=1, engine="keras").astype(np.float64)
    if np.array_equal(reference, again):
        difference = float(np.mean(np.abs(reference - twin)))
        return {"op": op, "magnitude": magnitude, "kind": "deterministic", "statistic": "pixel MAD (0-255)",
                "value": round(difference, 4), "tolerance": pixel_tolerance, "passed": difference <= pixel_tolerance}
    original = images.astype(np.float64)
    axes = tuple(range(1, images.ndim))
    ours = np.mean(np.abs(twin - original), axis=axes)
    theirs = np.mean(np.abs(reference - original), axis=axes)
    test = ks_2samp(ours, theirs)
    return {"op": op, "magnitude": magnitude, "kind": "random", "statistic": "KS D of per-image mean |change|",
            "value": round(float(test.statistic), 4), "p_value": float(f"{test.pvalue:.3g}"), "alpha": alpha,
            "mean_change_imgaug": round(float(theirs.mean()), 3), "mean_change_keras": round(float(ours.mean()), 3),
            "passed": bool(test.pvalue >= alpha)}


def run(ops=None, magnitudes=MAGNITUDES, count: int = 256, alpha: float = 0.01, pixel_tolerance: float = 1.0,
        size: int = 32) -> dict:
    """Every (op, magnitude) comparison and each op's verdict."""
    from keras_augtune.keras_twins import NO_TWIN, TWINS

    images = sample_images(count, size=size)
    names = [op for op in (ops or TWINS) if op != "identity"]
    rows = [compare(op, m, images, alpha, pixel_tolerance) for op in names for m in magnitudes]
    verdicts = {}
    for op in names:
        mine = [r for r in rows if r["op"] == op]
        worst = max(mine, key=lambda r: r["value"] / (r["tolerance"] if r["kind"] == "deterministic" else 1.0))
        verdicts[op] = {"verdict": "equivalent" if all(r["passed"] for r in mine) else "approximate",
                        "meant": TWINS[op].fidelity, "note": TWINS[op].note,
                        "worst": {k: worst[k] for k in ("magnitude", "kind", "statistic", "value")}}
    return {"rows": rows, "ops": verdicts, "no_twin": dict(NO_TWIN), "images": count, "size": size}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--pixel-tolerance", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=32, help="side of the square crops (default 32)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    started = time.perf_counter()
    import keras

    result = run(count=args.images, alpha=args.alpha, pixel_tolerance=args.pixel_tolerance, size=args.size)
    result.update(
        command=" ".join(["python benchmarks/engine_equivalence.py", *(sys.argv[1:] if argv is None else argv)]),
        keras_backend=keras.backend.backend(), keras_version=keras.__version__,
        machine=f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        load_average_before=[round(v, 2) for v in load_before],
        load_average_after=[round(v, 2) for v in os.getloadavg()],
        seconds=round(time.perf_counter() - started, 1),
        images_source=f"{args.size}x{args.size} crops of scikit-learn's china.jpg and flower.jpg",
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    for op, v in result["ops"].items():
        w = v["worst"]
        print(f"{op:26s} {v['verdict']:12s} worst m={w['magnitude']}: {w['statistic']} = {w['value']}")
    print(f"wrote {args.out} in {result['seconds']} s")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
