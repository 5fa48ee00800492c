"""The bad-input matrix (issue 6, item 4): every mistake answered by a precise message,
before any trial runs. Each case is its own test and asserts the message."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from conftest import make_tuner, tiny_model
from keras_augtune import AugmentTuner, DeepAugment, Policy, PolicySpace
from keras_augtune.data import check_dataset
from keras_augtune.deepaugment import check_config
from keras_augtune.models import check_model_name

SMALL_SPACE = PolicySpace(num_sub_policies=1, ops_per_sub_policy=1, ops=["identity", "rotate"])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(40, 12, 12, 1), dtype=np.uint8)
    y = np.arange(40) % 4
    return x, y


def tuner(tmp_path, model=None, **kwargs):
    options = dict(max_trials=2, child_epochs=1, batch_size=8, policy_space=SMALL_SPACE, seed=0)
    return make_tuner(tmp_path, tiny_model(classes=4) if model is None else model, **{**options, **kwargs})


def search_fails(tmp_path, x, y, error, message, **kwargs):
    t = tuner(tmp_path, **kwargs.pop("tuner_kwargs", {}))
    with pytest.raises(error, match=message):
        t.search(x, y, **kwargs)
    assert not t.oracle.trials  # refused before any trial
    return t


# ---------------------------------------------------------------- images and labels
def test_x_y_length_mismatch(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, y[:39], ValueError, "x has 40 images but y has 39 labels; they must match")


def test_images_of_rank_2(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x.reshape(40, 144), y, ValueError,
                 r"must be a batch of shape \(N, H, W\), \(N, H, W, 1\) or \(N, H, W, 3\); got rank 2 with shape \(40, 144\)")


def test_images_of_rank_5(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x[:, None], y, ValueError, r"got rank 5 with shape \(40, 1, 12, 12, 1\)")


def test_images_with_4_channels(tmp_path, data):
    x, y = data
    search_fails(tmp_path, np.repeat(x, 4, axis=-1), y, ValueError, "1 \\(grayscale\\) or 3 \\(RGB\\) channels.*got 4")


def test_object_array_images(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x.astype(object), y, TypeError, r"x must hold numbers \(uint8 or float pixels\), got dtype object")


def test_string_images(tmp_path, data):
    _, y = data
    search_fails(tmp_path, np.full((40, 12, 12), "a"), y, TypeError, "x must hold numbers.*got dtype <U1")


def test_ragged_list_of_images(tmp_path):
    with pytest.raises(ValueError, match="must be a rectangular array; the list has images of different sizes"):
        check_dataset([np.zeros((8, 8)), np.zeros((9, 9))], [0, 1])


def test_nan_pixels(tmp_path, data):
    x, y = data
    x = x / 255.0
    x[3, 4, 5, 0] = np.nan
    search_fails(tmp_path, x, y, ValueError, "1 pixel value.s. are NaN or infinite")


def test_inf_pixels(tmp_path, data):
    x, y = data
    x = x / 255.0
    x[0, 0, 0, 0] = np.inf
    x[1, 0, 0, 0] = -np.inf
    search_fails(tmp_path, x, y, ValueError, "2 pixel value.s. are NaN or infinite")


def test_pixels_outside_value_range(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x.astype("float32"), y, ValueError,
                 r"pixel values in \[\d+, 255\], outside the value_range of float32 images with none declared \(0, 1\); "
                 r"pass value_range=\(0, 255\)")


def test_fractional_float_labels(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, y + 0.5, ValueError, "Labels are floats with fractional or NaN values.*integer class ids 0..K-1")


def test_nan_labels(tmp_path, data):
    x, y = data
    labels = y.astype(float)
    labels[0] = np.nan
    search_fails(tmp_path, x, labels, ValueError, "Labels are floats with fractional or NaN values")


def test_whole_float_labels_are_accepted(data):
    x, y = data
    assert check_dataset(x, y.astype(float)).y.dtype == np.int64


def test_negative_labels(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, y - 1, ValueError, "Labels must be class ids 0..K-1; found a negative label -1")


def test_string_labels(tmp_path, data):
    x, _ = data
    search_fails(tmp_path, x, np.array(["cat", "dog"] * 20), TypeError,
                 r"Labels must be integer class ids or one-hot rows, got dtype <U3.*np.unique\(y, return_inverse=True\)")


def test_object_labels(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, y.astype(object), TypeError, "Labels must be integer class ids or one-hot rows, got dtype object")


def test_labels_not_matching_the_model_outputs(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, (np.arange(40) % 6), ValueError,
                 r"output has shape \(4,\) per image, but the labels have 6 classes: the last layer must output 6")


def test_one_hot_labels_not_matching_the_model_outputs(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, keras.utils.to_categorical(y, 5), ValueError, "but the labels have 5 classes")


def test_malformed_one_hot_labels(tmp_path, data):
    x, _ = data
    search_fails(tmp_path, x, np.full((40, 4), 0.25), ValueError, "2-D labels must be one-hot rows")


def test_single_class(tmp_path, data):
    x, _ = data
    search_fails(tmp_path, x, np.full(40, 3), ValueError, "All labels are 3: a classifier needs at least two classes")


def test_too_few_images_per_class_for_the_validation_split(tmp_path, data):
    x, y = data
    y = y.copy()
    y[:] = np.arange(40) % 2
    y[0] = 2  # class 2 has a single image: it cannot be on both sides of the split
    search_fails(tmp_path, x, y, ValueError, "Too few images for a stratified validation split.*class 2 has 1")


def test_validation_split_too_small_for_the_classes(tmp_path, data):
    x, y = data  # 4 classes, 10 images each; a 5 % split holds out 2 images < 4 classes
    search_fails(tmp_path, x, y, ValueError, r"both parts at least one image per class \(38 kept, 2 held out\)",
                 tuner_kwargs={"validation_split": 0.05})


def test_train_set_size_larger_than_the_data(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, y, ValueError,
                 "train_set_size=500 is larger than the 32 training images left after the validation split",
                 tuner_kwargs={"train_set_size": 500})


def test_validation_data_of_another_shape(tmp_path, data):
    x, y = data
    search_fails(tmp_path, x, y, ValueError, r"validation images have shape \(10, 10, 1\)",
                 validation_data=(x[:8, :10, :10], y[:8]))


# ---------------------------------------------------------------- models
def test_unknown_model_name():
    with pytest.raises(ValueError, match="Unknown model 'simpel'. Did you mean 'simple'"):
        check_model_name("simpel")


def test_unknown_model_name_lists_the_models(tmp_path):
    with pytest.raises(ValueError, match="Unknown model 'resnet50'.*Built-in models: simple, basiccnn"):
        AugmentTuner("resnet50", directory=str(tmp_path))


@pytest.mark.parametrize("name", ["wrn_16", "wrn16_2", "wrn_16_x"])
def test_malformed_wrn_name(name):
    with pytest.raises(ValueError, match=f"Malformed wide-ResNet name '{name}': write wrn_<depth>_<width>"):
        check_model_name(name)


def test_wrn_depth_not_6n_plus_4():
    with pytest.raises(ValueError, match="depth must be 6n \\+ 4 .* got depth 15, width 2"):
        check_model_name("wrn_15_2")


def test_wrn_width_zero():
    with pytest.raises(ValueError, match="got depth 16, width 0"):
        check_model_name("wrn_16_0")


# ---------------------------------------------------------------- numbers
@pytest.mark.parametrize("name,value", [
    ("max_trials", 0), ("max_trials", -3), ("child_epochs", 0), ("batch_size", 0), ("batch_size", -32),
    ("executions_per_trial", 0), ("max_trials", 2.5), ("child_epochs", True),
])
def test_non_positive_counts(tmp_path, name, value):
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value!r}"):
        tuner(tmp_path, **{name: value})


@pytest.mark.parametrize("name", ["epochs", "batch_size"])
def test_non_positive_search_arguments(tmp_path, data, name):
    x, y = data
    search_fails(tmp_path, x, y, ValueError, f"{name} must be a positive integer, got 0", **{name: 0})


def test_non_positive_deepaugment_iterations(tmp_path, data):
    x, y = data
    deepaug = DeepAugment(x, y, config={"model": "simple", "directory": str(tmp_path), "train_set_size": 20})
    with pytest.raises(ValueError, match="iterations must be a positive integer, got 0"):
        deepaug.optimize(0)


@pytest.mark.parametrize("key,value", [("child_epochs", 0), ("child_batch_size", -1), ("opt_samples", 0)])
def test_non_positive_deepaugment_config(tmp_path, data, key, value):
    x, y = data
    with pytest.raises(ValueError, match=f"config\\['{key}'\\] must be a positive integer, got {value}"):
        DeepAugment(x, y, config={key: value, "directory": str(tmp_path)})


# ---------------------------------------------------------------- config and policy files
def test_unknown_config_keys_suggest_the_closest():
    with pytest.raises(ValueError) as info:
        check_config({"child_epoch": 3, "batchsize": 16, "zzz": 1})
    message = str(info.value)
    assert "Unknown config key(s): 'child_epoch' (did you mean 'child_epochs'" in message
    assert "'batchsize' (did you mean 'child_batch_size'?)" in message
    assert "'zzz'. Known keys: model, method" in message


def test_unknown_config_key_through_deepaugment(data):
    x, y = data
    with pytest.raises(ValueError, match="'opt_sample' \\(did you mean 'opt_samples'"):
        DeepAugment(x, y, config={"opt_sample": 2})


def test_policy_json_from_a_newer_version():
    text = json.dumps({"format": "keras_augtune.Policy", "version": 99, "sub_policies": [[]]})
    with pytest.raises(ValueError, match="written by a newer keras_augtune \\(format version 99\\).*Upgrade keras_augtune"):
        Policy.from_json(text)


def test_policy_json_with_an_unknown_op():
    text = json.dumps({"sub_policies": [[{"op": "rotat", "probability": 0.5, "magnitude": 0.3}]]})
    with pytest.raises(ValueError, match="Unknown augmentation op 'rotat'. Did you mean 'rotate'"):
        Policy.from_json(text)


def test_policy_json_malformed():
    with pytest.raises(ValueError, match="Malformed policy JSON"):
        Policy.from_json('{"sub_policies": [[{"op": "rotate",')


def test_exported_policies_from_a_newer_version(tmp_path):
    from keras_augtune import load_policies

    path = tmp_path / "best.json"
    path.write_text(json.dumps({"format": "keras_augtune.policies", "version": 7, "policies": []}))
    with pytest.raises(ValueError, match="written by a newer keras_augtune \\(version 7\\)"):
        load_policies(str(path))


# ---------------------------------------------------------------- image folders and .npz files (issue 13)
def _folder(tmp_path, images):
    """A class-per-folder dataset: ``images`` maps "class/name.ext" to a PIL image or raw bytes."""
    root = tmp_path / "imgs"
    for name, image in images.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, bytes):
            path.write_bytes(image)
        else:
            image.save(path)
    return str(root)


def test_16_bit_png_keeps_its_pixels(tmp_path):
    from PIL import Image

    from keras_augtune.loaders import load_image_folder

    ramp = (np.arange(16 * 16, dtype=np.uint16).reshape(16, 16) * 257)  # 0..65535, 8-bit values 0..255
    folder = _folder(tmp_path, {"a/0.png": Image.fromarray(ramp), "b/0.png": Image.fromarray(ramp[::-1])})
    assert Image.open(os.path.join(folder, "a", "0.png")).mode.startswith("I;16")
    x, _, _ = load_image_folder(folder)
    assert x.shape == (2, 16, 16, 1) and x.dtype == np.uint8
    np.testing.assert_array_equal(x[0, ..., 0], np.arange(256).reshape(16, 16))  # not all-white


def test_float_tiff_in_0_1_is_scaled_and_out_of_range_refused(tmp_path):
    from PIL import Image

    from keras_augtune.loaders import load_image_folder

    ramp = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    folder = _folder(tmp_path, {"a/0.tif": Image.fromarray(ramp), "b/0.tif": Image.fromarray(ramp[::-1])})
    x, _, _ = load_image_folder(folder)
    np.testing.assert_array_equal(x[0, ..., 0], np.rint(ramp * 255).astype(np.uint8))  # not all 0
    Image.fromarray(ramp * 1000).save(os.path.join(folder, "b", "0.tif"))
    with pytest.raises(ValueError, match=r"0\.tif has float pixels in \[0, 1000\], outside \[0, 1\]"):
        load_image_folder(folder)


def test_int32_tiff_is_refused(tmp_path):
    from PIL import Image

    from keras_augtune.loaders import load_image_folder

    values = (np.arange(64, dtype=np.int32).reshape(8, 8) * 1000)
    folder = _folder(tmp_path, {"a/0.tif": Image.fromarray(values), "b/0.tif": Image.fromarray(values)})
    with pytest.raises(ValueError, match="has 32-bit integer pixels, which have no standard scale to 0-255"):
        load_image_folder(folder)


def test_one_huge_image_does_not_set_the_size_of_all(tmp_path):
    from PIL import Image

    from keras_augtune.data import DataWarning

    from keras_augtune.loaders import load_image_folder

    small = Image.fromarray(np.full((16, 16), 100, np.uint8))
    images = {f"{c}/{i}.png": small for c in "ab" for i in range(1, 4)}
    images["a/0_big.png"] = Image.fromarray(np.full((800, 800), 100, np.uint8))  # sorted first
    with pytest.warns(DataWarning, match=r"1 of 7 images are not 16x16, the most common size .*0_big.png is 800x800"):
        x, _, _ = load_image_folder(_folder(tmp_path, images))
    assert x.shape == (7, 16, 16, 1)


def test_an_image_declaring_20000x20000_is_refused_before_decoding(tmp_path):
    import io
    import struct
    import zlib

    from PIL import Image

    from keras_augtune.loaders import load_image_folder

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    png = bytearray(buffer.getvalue())
    png[16:24] = struct.pack(">II", 20000, 20000)  # the IHDR chunk's width and height, then its CRC
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    ok = Image.fromarray(np.zeros((8, 8), np.uint8))
    folder = _folder(tmp_path, {"a/0.png": bytes(png), "a/1.png": ok, "b/0.png": ok})
    with pytest.raises(ValueError, match="0.png declares more than the 89-megapixel limit"):
        load_image_folder(folder)


def test_hidden_files_are_skipped(tmp_path):
    from PIL import Image

    from keras_augtune.loaders import load_image_folder

    ok = Image.fromarray(np.zeros((8, 8), np.uint8))
    folder = _folder(tmp_path, {"a/0.png": ok, "a/._0.png": b"\x00\x05\x16\x07 macOS AppleDouble", "b/0.png": ok})
    x, y, classes = load_image_folder(folder)
    assert len(x) == 2 and classes == ["a", "b"]


def _npz_search_error(tmp_path, capsys, **arrays):
    from keras_augtune import cli

    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    assert cli.main(["search", "--data", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("labels,message", [
    (np.array(["cat", "dog"] * 20), "Labels must be integer class ids or one-hot rows, got dtype <U3"),
    (np.zeros(0, np.int64), "x has 40 images but y has 0 labels"),
    (np.int64(3), "Labels must be an array with one class id per image, got a single value"),
])
def test_npz_with_string_empty_or_scalar_labels(tmp_path, capsys, data, labels, message):
    x, _ = data
    assert message in _npz_search_error(tmp_path, capsys, x=x, y=labels)


def test_npz_that_is_not_a_zip_never_suggests_allow_pickle(tmp_path, capsys):
    from keras_augtune import cli

    path = tmp_path / "data.npz"
    np.save(tmp_path / "plain.npy", np.zeros(3))  # an .npy renamed .npz
    os.replace(tmp_path / "plain.npy", path)
    assert cli.main(["search", "--data", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "is not an .npz archive (an .npz is a zip of .npy arrays)" in err
    assert "pickle" not in err and "Traceback" not in err


def test_npz_with_an_object_array_is_not_unpickled(tmp_path, capsys, data):
    x, y = data
    err = _npz_search_error(tmp_path, capsys, x=x, y=np.array([{"label": 1}] * 40, dtype=object))
    assert "Array 'y' in" in err and "holds Python objects, which are not loaded (unsafe)" in err
    assert "allow_pickle" not in err


def test_a_huge_label_id_is_refused_before_allocating(tmp_path):
    # In a subprocess with 1.5 GB of address space: 10**12 as a label used to allocate 10**12
    # class names (23 GB, then the machine's memory). The check must come first.
    x = np.zeros((40, 8, 8), np.uint8)
    y = np.arange(40) % 4
    y[7] = 10**12
    path = tmp_path / "huge.npz"
    np.savez(path, x=x, y=y)
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1536 << 20, 1536 << 20)); "
            "from keras_augtune.loaders import load_data\n"
            "try:\n    load_data(sys.argv[1])\nexcept ValueError as exc:\n    print(exc); sys.exit(1)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "with K at most 100,000; found the label 1000000000000 (5 distinct labels)" in proc.stdout
    assert "np.unique(y, return_inverse=True)" in proc.stdout


# ---------------------------------------------------------------- policy, run and output files (issue 13)
STEP = {"op": "rotate", "probability": 0.5, "magnitude": 0.3}


@pytest.mark.parametrize("text,message", [
    ('{"sub_policies": ' + "[" * 100_000 + "]" * 100_000 + "}", "is nested too deeply"),
    ('{"sub_policies": [[{"op": "rotate", "probability": 1' + "0" * 400 + ', "magnitude": 0.3}]]}',
     r"'sub_policies\[0\]\[0\].probability' must be a number in \[0, 1\], got a 401-digit number"),
    ('{"version": 1' + "0" * 400 + ', "sub_policies": [[]]}', r"newer keras_augtune \(format version a 401-digit number\)"),
    (json.dumps({"version": "1", "sub_policies": [[STEP]]}), "Field 'version' must be an integer, got '1'"),
    (json.dumps({"sub_policies": [[STEP]] * 200_000}), "is larger than 10,000,000 characters, the limit for a policy file"),
    (json.dumps({"sub_policies": [[STEP]] * 1_001}), "holds 1,001 sub-policies; a policy may have at most 1,000"),
    (json.dumps({"sub_policies": [[STEP] * 101]}), r"'sub_policies\[0\]' holds 101 ops; a sub-policy may have at most 100"),
])
def test_hostile_policy_json(tmp_path, text, message):
    path = tmp_path / "policy.json"
    path.write_text(text)
    for source in (text, str(path)):
        with pytest.raises(ValueError, match=message):
            Policy.from_json(source)
    if "nested" not in message and "10,000,000" not in message:  # the dict form obeys the same limits
        with pytest.raises(ValueError, match=message):
            Policy.from_dict(json.loads(text))


@pytest.mark.parametrize("payload,message", [
    ({"policies": None}, "field 'policies' must be a list of policies, got NoneType"),
    ({"version": "1", "policies": []}, "field 'version' must be an integer, got '1'"),
    ({"policies": [{"sub_policies": [[STEP]] * 200_000}]}, "larger than 10,000,000 characters"),
])
def test_hostile_best_policies_file(tmp_path, payload, message):  # the format of export_policies
    from keras_augtune import load_policies

    path = tmp_path / "best.json"
    path.write_text(json.dumps({"format": "keras_augtune.policies", "version": 1, **payload}))
    with pytest.raises(ValueError, match=message):
        load_policies(str(path))


@pytest.mark.parametrize("run,message", [
    ([1, 2], "run.json must be a JSON object (the run's settings), got a list"),
    ({"settings": "abc"}, "run.json: field 'settings' must be an object, got a string"),
    ({"project_name": "../../elsewhere"}, "field 'project_name' must be a folder name inside the run folder, got '../../elsewhere'"),
    ({"project_name": "/etc"}, "field 'project_name' must be a folder name inside the run folder"),
])
def test_hostile_run_json(tmp_path, capsys, run, message):
    from keras_augtune import cli

    folder = tmp_path / "run"
    (folder / "tuner").mkdir(parents=True)
    (folder / "tuner" / "oracle.json").write_text("{}")
    (folder / "run.json").write_text(json.dumps(run))
    for argv in (["report", str(folder)], ["search", "--resume", "--out", str(folder)]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


def test_report_and_show_output_paths(tmp_path, capsys):
    from keras_augtune import cli

    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"sub_policies": [[STEP]]}))
    cases = [
        (["report", str(tmp_path), "--out", str(tmp_path / "folder")], "is a folder; give a file name ending in .html or .htm or .png"),
        (["report", str(tmp_path), "--out", str(tmp_path / "r.pdf")], "the report is written as .html or .htm or .png"),
        (["show", str(policy), "--out", str(tmp_path / "afile" / "x.png")], f"{tmp_path / 'afile'} is a file, not a folder"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path)) == ["afile", "folder", "p.json"]  # nothing written, no temp file left
    assert not os.listdir(tmp_path / "folder")
