"""Check and prepare a MedMNIST ``.npz`` (28×28 medical images) for benchmarks/end_to_end.py.

The file is not in this repository (CC BY 4.0 data; see docs/benchmarks.md, "Medical images"):
fetch it, then point the benchmark at it::

    python benchmarks/medmnist_data.py benchmarks/data/medmnist/breastmnist.npz     # verify, summarise
    python benchmarks/end_to_end.py --data medmnist:benchmarks/data/medmnist/breastmnist.npz --seeds 10

A file is accepted when its SHA-256 is one recorded in `KNOWN` (a copy whose origin was
checked), or when its MD5 is the one MedMNIST publishes for the official Zenodo file
(`OFFICIAL_MD5`, from ``medmnist/info.py`` v2.1.0); ``--sha256`` accepts another file on purpose.
`prepare()` returns uint8 images with a channel axis, integer labels of one dimension, and the
official train / validation / test splits, checked for shape and label range.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys

import numpy as np

#: SHA-256 of a checked copy -> where it came from and what it is
KNOWN = {
    "5e68d79723fb3a63a399b0a66b66451799fc2eb3651f469cec0b679cfd743b68": {
        "name": "breastmnist",
        "source": "github.com/KamalJain777/AMLS_25_26_SN24205421, Datasets/BreastMNIST.npz at commit "
                  "b7f638d33cc9e6dc1a0de213b243598105837d5f (deleted from the repository later)",
        "note": "BreastMNIST 28x28 as MedMNIST v2 splits it (546 / 78 / 156 images, 147 / 21 / 42 malignant), "
                "re-saved: its labels are 1-D, so its bytes (MD5 098de56c...) differ from the official file's",
    },
    "f36c2b3e34de9d60c5c734118bc6daff281eaf76b67a57d26ad958da948274b0": {
        "name": "pneumoniamnist-balanced",
        "source": "github.com/aksufatih/snn-medmnist, pneumoniamnist.npz at commit "
                  "5df79ab (59a75490493d7eeeccf796b961bac15689286e3c holds the same blob)",
        "note": "PneumoniaMNIST 28x28 under-sampled by its author to balance the classes (2,428 / 270 / 468 "
                "images, half normal); not MedMNIST's splits",
    },
    "a554d2332488d3ddc075125e66a1af77ec379fd2bafc09108ab95a37e2bd9c26": {
        "name": "pneumoniamnist-reduced",
        "source": "github.com/varun19424/pneumonia_mnist, data/pneumoniamnist.npz at commit "
                  "9361a718d67e8a40f1ef8929db8c5682add8bd70",
        "note": "PneumoniaMNIST 28x28 with MedMNIST's validation and test splits (524 / 624) but 826 of the "
                "1,214 normal training images missing (3,882 training images, 388 normal)",
    },
}
#: MD5 of the official MedMNIST v2 files (zenodo.org/record/6496656), from medmnist/info.py v2.1.0
OFFICIAL_MD5 = {
    "a8b06965200029087d5bd730944a56c1": "pathmnist", "0744692d530f8e62ec473284d019b0c7": "dermamnist",
    "c68d92d5b585d8d81f7112f81e2d0842": "octmnist", "28209eda62fecd6e6a2d98b1501bb15f": "pneumoniamnist",
    "bd4c0672f1bba3e3a89f0e4e876791e4": "retinamnist", "750601b1f35ba3300ea97c75c52ff8f6": "breastmnist",
    "7053d0359d879ad8a5505303e11de1dc": "bloodmnist", "ebe78ee8b05294063de985d821c1c34b": "tissuemnist",
    "866b832ed4eeba67bfb9edee1d5544e6": "organamnist", "0afa5834fb105f7705a7d93372119a21": "organcmnist",
    "e5c39f1af030238290b9557d9503af9d": "organsmnist",
}
#: sets whose label survives a horizontal flip (no left/right anatomy in the label): the base
#: recipe is crop+flip for these, crop alone for the others (chest X-rays and CT organs have a side)
FLIP_KEEPS_LABEL = {"pathmnist", "dermamnist", "bloodmnist", "breastmnist", "retinamnist", "tissuemnist", "octmnist"}
SPLITS = ("train", "val", "test")


def _digests(path: str) -> tuple[str, str]:
    sha256, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha256.update(block)
            md5.update(block)
    return sha256.hexdigest(), md5.hexdigest()


def identify(path: str, sha256: str | None = None) -> str:
    """The set's name, after checking the file's checksum; one-line SystemExit when it is not a known file."""
    if not os.path.isfile(path):
        raise SystemExit(f"no MedMNIST file at {path} (fetch it first: see docs/benchmarks.md, 'Medical images')")
    digest, md5 = _digests(path)
    if sha256 is not None:
        if digest != sha256.lower():
            raise SystemExit(f"{path}: SHA-256 is {digest}, not the {sha256} asked for")
        return os.path.splitext(os.path.basename(path))[0].lower()
    if digest in KNOWN:
        return KNOWN[digest]["name"]
    if md5 in OFFICIAL_MD5:
        return OFFICIAL_MD5[md5]
    raise SystemExit(f"{path}: unknown file (SHA-256 {digest}); pass --sha256 {digest} to use it anyway")


def prepare(path: str, sha256: str | None = None) -> dict:
    """{"name", "flip", "classes", and "<split>_images" (uint8, N×28×28×C), "<split>_labels" (int64, N)
    for train / val / test}, from a checked MedMNIST ``.npz``."""
    name = identify(path, sha256)
    with np.load(path, allow_pickle=False) as data:
        missing = [f"{s}_{k}" for s in SPLITS for k in ("images", "labels") if f"{s}_{k}" not in data.files]
        if missing:
            raise SystemExit(f"{path}: not a MedMNIST file (no {', '.join(missing)})")
        out = {"name": name, "flip": name.split("-")[0] in FLIP_KEEPS_LABEL}
        for split in SPLITS:
            images, labels = data[f"{split}_images"], data[f"{split}_labels"]
            if images.dtype != np.uint8 or images.ndim not in (3, 4) or labels.shape[0] != images.shape[0]:
                raise SystemExit(f"{path}: {split} images must be uint8 N×H×W(×C) with one label each "
                                 f"(got {images.dtype} {images.shape}, labels {labels.shape})")
            if labels.ndim == 2 and labels.shape[1] != 1:
                raise SystemExit(f"{path}: multi-label sets (such as ChestMNIST) are not supported")
            out[f"{split}_images"] = images[..., None] if images.ndim == 3 else images
            out[f"{split}_labels"] = labels.reshape(-1).astype(np.int64)
    out["classes"] = int(max(out[f"{s}_labels"].max() for s in SPLITS)) + 1
    return out


def load_for_end_to_end(path: str):
    """``benchmarks/end_to_end.py``'s ``load()`` for ``--data medmnist:<path>``: (name, training
    images (the official train and validation splits: the benchmark draws its own validation
    split from them), labels, test images, test labels, whether flips keep the label)."""
    data = prepare(path)
    x = np.concatenate([data["train_images"], data["val_images"]])
    y = np.concatenate([data["train_labels"], data["val_labels"]])
    return data["name"], x, y, data["test_images"], data["test_labels"], data["flip"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the .npz file")
    parser.add_argument("--sha256", help="accept a file with this SHA-256 that is not a known one")
    args = parser.parse_args(argv)
    data = prepare(args.path, args.sha256)
    print(f"{data['name']}: {data['classes']} classes; base recipe "
          f"{'crop+flip (a flip keeps the label)' if data['flip'] else 'crop (no flip: the anatomy has a side)'}")
    for split in SPLITS:
        images, labels = data[f"{split}_images"], data[f"{split}_labels"]
        counts = np.bincount(labels, minlength=data["classes"]).tolist()
        print(f"  {split}: {images.shape[0]} images {images.shape[1:]}, per class {counts}")


if __name__ == "__main__":
    sys.exit(main())
