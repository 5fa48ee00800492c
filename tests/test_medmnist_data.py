"""benchmarks/medmnist_data.py: a MedMNIST-style .npz is checked by checksum and prepared for the
end-to-end benchmark (synthetic files here: the real ones are not in the repository)."""

import hashlib
import importlib.util
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def med():
    return _module("medmnist_data")


def _npz(path, labels_2d=True, width=1):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 20), ("val", 6), ("test", 8)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 3
        arrays[f"{split}_labels"] = np.repeat(labels[:, None], width, axis=1) if labels_2d else labels
    np.savez(path, **arrays)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_an_unknown_file_is_refused_in_one_line_naming_its_checksum(med, tmp_path):
    digest = _npz(tmp_path / "x.npz")
    with pytest.raises(SystemExit, match=f"unknown file \\(SHA-256 {digest}\\); pass --sha256"):
        med.prepare(str(tmp_path / "x.npz"))
    with pytest.raises(SystemExit, match="SHA-256 is"):
        med.prepare(str(tmp_path / "x.npz"), sha256="0" * 64)
    with pytest.raises(SystemExit, match="no MedMNIST file at"):
        med.prepare(str(tmp_path / "missing.npz"))


def test_prepare_adds_the_channel_and_flattens_labels(med, tmp_path, monkeypatch):
    digest = _npz(tmp_path / "b.npz")
    monkeypatch.setitem(med.KNOWN, digest, {"name": "breastmnist", "source": "test", "note": "test"})
    data = med.prepare(str(tmp_path / "b.npz"))
    assert data["name"] == "breastmnist" and data["flip"] and data["classes"] == 3
    assert data["train_images"].shape == (20, 28, 28, 1) and data["train_images"].dtype == np.uint8
    assert data["test_labels"].shape == (8,) and data["test_labels"].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    name, x, y, xt, yt, flip = med.load_for_end_to_end(str(tmp_path / "b.npz"))
    assert (name, x.shape, y.shape, xt.shape, flip) == ("breastmnist", (26, 28, 28, 1), (26,), (8, 28, 28, 1), True)
    # the end-to-end benchmark takes it as --data medmnist:<path> (through this module, with the test's checksum)
    monkeypatch.setitem(sys.modules, "medmnist_data", med)
    assert _module("end_to_end").load(f"medmnist:{tmp_path / 'b.npz'}")[0] == "breastmnist"


def test_multi_label_sets_are_refused_and_chest_xrays_get_no_flip(med, tmp_path):
    digest = _npz(tmp_path / "c.npz", width=14)
    with pytest.raises(SystemExit, match="multi-label"):
        med.prepare(str(tmp_path / "c.npz"), sha256=digest)
    digest = _npz(tmp_path / "pneumoniamnist.npz")
    assert not med.prepare(str(tmp_path / "pneumoniamnist.npz"), sha256=digest)["flip"]


def test_the_recorded_checksums_name_known_sets(med):
    assert {entry["name"].split("-")[0] for entry in med.KNOWN.values()} <= set(med.OFFICIAL_MD5.values())
    assert all(len(digest) == 64 for digest in med.KNOWN) and all(len(md5) == 32 for md5 in med.OFFICIAL_MD5)
