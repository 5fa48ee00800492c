"""The end-to-end benchmark's own pieces: the NumPy crop+flip, the paired statistics over seeds,
and its runs (tiny digits models): --resume trains only what is missing, --merge adds only missing
configurations, and a failed model is reported while the others are kept."""

import importlib.util
import json
import os

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def e2e():
    spec = importlib.util.spec_from_file_location("end_to_end", os.path.join(ROOT, "benchmarks", "end_to_end.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _windows(image, pad):
    """Every pad-and-crop window of ``image`` (reflect padding), mirrored ones too, as bytes."""
    padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = image.shape[:2]
    crops = [padded[t:t + h, s:s + w] for t in range(2 * pad + 1) for s in range(2 * pad + 1)]
    offsets = [(t, s) for t in range(2 * pad + 1) for s in range(2 * pad + 1)]
    return {c.tobytes(): o for o, c in zip(offsets, crops)}, {c[:, ::-1].tobytes() for c in crops}


def test_crop_flip_takes_a_reflect_padded_window_per_image(e2e):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 10, 3), dtype=np.uint8)
    out = e2e.crop_flip(flip=False)(images.copy(), np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8
    offsets = set()
    for image, crop in zip(images, out):
        plain, _ = _windows(image, 4)
        assert crop.tobytes() in plain  # a window of *this* image: rows stay with their image
        offsets.add(plain[crop.tobytes()])
    assert len(offsets) > 20  # offsets drawn per image, not one per batch


def test_crop_flip_mirrors_about_half_the_images(e2e):
    rng = np.random.default_rng(0)
    # wider than 2 x pad + 2: a mirrored window is then never also a plain window (with narrow images
    # a window straddling a reflection point mirrors into another window)
    images = rng.integers(0, 256, (200, 8, 20, 3), dtype=np.uint8)
    out = e2e.crop_flip(flip=True)(images.copy(), np.random.default_rng(2))
    mirrored = 0
    for image, crop in zip(images, out):
        plain, flipped = _windows(image, 4)
        assert crop.tobytes() in plain or crop.tobytes() in flipped
        mirrored += crop.tobytes() not in plain
    assert 70 < mirrored < 130


def test_paired_uses_only_the_seeds_both_have(e2e):
    mean, half, n = e2e.paired({0: 0.30, 1: 0.40, 2: 0.50}, {1: 0.35, 2: 0.40, 7: 0.0})
    assert n == 2 and mean == pytest.approx(0.075) and half > 0
    assert e2e.paired({0: 0.3}, {1: 0.3})[2] == 0


def test_pooled_comparisons_over_search_seeds(e2e):
    labels = {"searched": "cf + searched policy", "random": "cf + random-search best"}
    finals = {"cf + TA": {0: 0.40, 1: 0.42},
              "cf + searched policy (search 0)": {0: 0.38, 1: 0.40},
              "cf + searched policy (search 1)": {0: 0.36, 1: 0.40},
              "cf + random-search best (search 0)": {0: 0.39, 1: 0.41},
              "cf + random-search best (search 1)": {0: 0.39, 1: 0.41}}
    lines = e2e._pooled(finals, labels, "cf + TA")
    # searched - random over 2 searches x 2 seeds: -0.01, -0.01, -0.03, -0.01 -> -1.50 points
    assert "2 search(es) × final seeds (4 pairs): -1.50" in lines[0]
    # mean over searches: seed 0 0.37 (-0.03 vs TA), seed 1 0.40 (-0.02) -> -2.50 points
    assert "mean over the 2 searches: 38.5%" in lines[1] and "-2.50" in lines[1]
    assert e2e._pooled({"cf + TA": {0: 0.4}}, labels, "cf + TA") == []
    one = e2e._pooled({"cf + TA": {0: 0.4, 1: 0.4}, "cf + searched policy": {0: 0.38, 1: 0.40},
                       "cf + random-search best": {0: 0.39, 1: 0.40}}, labels, "cf + TA")
    assert len(one) == 1 and "1 search(es) × final seeds (2 pairs): -0.50" in one[0]  # one search: no mean row


def test_resume_trains_only_the_missing_models(e2e, tmp_path, capsys):
    tiny = ["--data", "digits", "--methods", "none", "--out", str(tmp_path), "--epochs", "1",
            "--final-train-size", "100", "--final-width", "8"]
    e2e.main(tiny + ["--configs", "none", "--seeds", "1"])
    first = json.loads((tmp_path / "end_to_end_digits.json").read_text())
    capsys.readouterr()
    e2e.main(tiny + ["--configs", "none,cf", "--seeds", "2", "--resume"])
    log = capsys.readouterr().out
    assert "1 final models kept" in log and ": 3 models" in log  # not 4
    results = json.loads((tmp_path / "end_to_end_digits.json").read_text())
    assert results["final_seeds"] == {"no augmentation": [0, 1], "crop": [0, 1]}
    assert results["finals"]["no augmentation"][0] == first["finals"]["no augmentation"][0]
    assert len(results["runs"]) == 2
    table = (tmp_path / "end_to_end_digits.md").read_text()
    assert "| crop | " in table and "(2 pairs)" not in table  # no TrivialAugment row: nothing to pair with


def test_merge_adds_the_other_runs_missing_configurations(e2e, tmp_path, capsys):
    tiny = ["--data", "digits", "--methods", "none", "--out", str(tmp_path), "--epochs", "1",
            "--final-train-size", "100", "--final-width", "8", "--seeds", "1"]
    e2e.main(tiny + ["--configs", "none"])
    mine = json.loads((tmp_path / "end_to_end_digits.json").read_text())
    e2e.main(tiny + ["--configs", "none,ta", "--tag", "_other", "--final-width", "16"])  # another model
    other = json.loads((tmp_path / "end_to_end_digits_other.json").read_text())
    assert other["finals"]["no augmentation"] != mine["finals"]["no augmentation"]
    capsys.readouterr()
    e2e.main(tiny + ["--configs", "none", "--resume", "--merge", str(tmp_path / "end_to_end_digits_other.json")])
    assert "merged from" in (log := capsys.readouterr().out) and ": 0 models" in log
    results = json.loads((tmp_path / "end_to_end_digits.json").read_text())
    assert results["finals"]["crop + TrivialAugment"] == other["finals"]["crop + TrivialAugment"]
    assert results["finals"]["no augmentation"] == mine["finals"]["no augmentation"]  # a collision keeps this table's
    assert [r.get("merged", None) for r in results["runs"]] == [None, None, ["crop + TrivialAugment"]]
    assert "(1 pairs)" in (tmp_path / "end_to_end_digits.md").read_text()  # paired against the merged reference


def test_a_failed_model_is_reported_and_the_others_kept(e2e, tmp_path, monkeypatch):
    def train_final(x, y, xt, yt, steps, seed, args, num_classes, epochs):
        if steps:  # crop: fails
            raise MemoryError("out of memory")
        return 0.25, 123

    monkeypatch.setattr(e2e, "train_final", train_final)
    e2e.main(["--data", "digits", "--methods", "none", "--out", str(tmp_path), "--seeds", "2", "--configs", "none,cf"])
    results = json.loads((tmp_path / "end_to_end_digits.json").read_text())
    assert results["finals"] == {"no augmentation": [0.25, 0.25]}
    assert [(f["label"], f["seed"]) for f in results["failed_models"]] == [("crop", 4000), ("crop", 4001)]
    assert "FAILED model: crop (seed 4000): MemoryError: out of memory" in (tmp_path / "end_to_end_digits.md").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "--workers must be a positive integer, got 0"),
    (["--merge", "missing.json"], "no such results file: missing.json"),
    (["--searches", "missing.json"], "no such results file: missing.json"),
    (["--base", "crop-flips"], "--base: "),
])
def test_bad_arguments_are_refused_in_one_line(e2e, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit):
        e2e.parse_args(["--out", str(tmp_path), *extra])
    assert message in capsys.readouterr().err


def test_the_searches_race_under_the_base_asked_for(e2e, tmp_path, monkeypatch):
    """--base reaches AugmentTuner: the CIFAR suite's searches race under crop+flip, as its final rows do."""
    import keras_augtune

    class Built(Exception):
        pass

    def tuner(*a, **k):
        raise Built(k.get("base"))

    monkeypatch.setattr(keras_augtune, "AugmentTuner", tuner)
    args = e2e.parse_args(["--base", "crop-flip", "--out", str(tmp_path)])
    x, y = e2e.load("digits")[1:3]
    with pytest.raises(Built, match="^crop-flip$"):
        e2e.search("random", x[:60], y[:60], x[60:90], y[60:90], 0, args, str(tmp_path))


@pytest.mark.parametrize("content", ["{not json", '{"finals": {}}', "[1, 2]"])
def test_a_file_that_is_not_a_results_file_is_named(e2e, tmp_path, content):
    path = tmp_path / "other.json"
    path.write_text(content)
    with pytest.raises(SystemExit, match="other.json"):
        e2e.main(["--data", "digits", "--methods", "none", "--seeds", "0", "--configs", "none",
                  "--out", str(tmp_path), "--merge", str(path)])


def test_payoff_compares_the_race_pick_with_every_recipe_row(e2e):
    """The race's row against none / base / + TA / + RA: differences race − row in points (negative:
    the pick has the lower error), one corrected family, and the issue-22 targets read off it."""
    labels = {"race": "crop + race's pick", "none": "no augmentation", "base": "crop", "ta": "crop + TrivialAugment",
              "ra_prefix": "crop + RandAugment(", "random-race": "x", "searched": "s", "random": "r"}
    rng = np.random.default_rng(0)
    seeds = range(10)
    shared = {k: rng.normal(0, 0.004) for k in seeds}  # what a seed does to every row
    mean = {"no augmentation": 0.012, "crop": 0.012, "crop + TrivialAugment": 0.020,
            "crop + RandAugment(N=1, M=0.2)": 0.016, "crop + race's pick": 0.011}
    finals = {text: {k: m + shared[k] + rng.normal(0, 0.0005) for k in seeds} for text, m in mean.items()}
    results = {"labels": labels, "searches": [
        {"method": "bayesian", "seed": s, "verdict": {"kind": "baseline", "name": None}} for s in range(3)]}
    lines = e2e._payoff(finals, results)
    summary = results["payoff"]
    ta = summary["rows"]["crop + TrivialAugment"]
    assert ta["difference"] == pytest.approx(100 * np.mean([finals["crop + race's pick"][k] - finals["crop + TrivialAugment"][k]
                                                            for k in seeds]))
    assert ta["interval"][1] < 0 and summary["better_than_ta_met"]  # 0.9 points better, resolved
    assert summary["best_recipe_row"] in ("no augmentation", "crop") and summary["family"] == 4
    assert summary["never_worse_met"] and summary["smallest_resolved_points"] < 0.3
    assert [p["search"] for p in summary["picks"]] == [0, 1, 2] and any("race's pick − crop" in x for x in lines)
    finals["crop + race's pick"] = {k: v + 0.01 for k, v in finals["crop + race's pick"].items()}  # a point worse
    e2e._payoff(finals, results)
    assert not results["payoff"]["never_worse_met"] and not results["payoff"]["better_than_ta_met"]


def test_a_race_row_made_of_one_rows_models_is_that_row(e2e):
    """Every race picked nothing beyond the base, so each seed's model is the base row's (``aliases``):
    when that row has the lowest mean, the pick is the best row and never worse than it, although 5
    noisy seeds cannot resolve 0.3 points; when one seed's model is another row's, it is a comparison again."""
    labels = {"race": "pick", "none": "none", "base": "crop+flip", "ta": "+ TA", "ra_prefix": "+ RA(",
              "random-race": "x", "searched": "s", "random": "r"}
    rng = np.random.default_rng(1)
    shared = {k: rng.normal(0, 0.004) for k in range(5)}
    finals = {text: {k: m + shared[k] + rng.normal(0, 0.006) for k in range(5)}
              for text, m in (("crop+flip", 0.380), ("none", 0.410), ("+ TA", 0.383))}
    finals["pick"] = dict(finals["crop+flip"])
    results = {"labels": labels, "searches": [], "aliases": {"pick": {str(k): "crop+flip" for k in range(5)}}}
    e2e._payoff(finals, results)
    summary = results["payoff"]
    assert summary["best_recipe_row"] == "crop+flip" and summary["never_worse_met"]
    assert summary["rows"]["+ TA"]["interval"][1] > 0.3  # not resolved: met only as the best row
    results["aliases"]["pick"]["4"] = "+ TA"  # seed 4's model is another row's: not one row's models
    e2e._payoff(finals, results)
    assert not results["payoff"]["never_worse_met"]


def test_a_pick_that_is_a_recipe_row_is_never_worse_when_that_row_is_best(e2e):
    """CIFAR's race picked crop+flip alone: the pick *is* the base row (``same``). When it has the lowest
    mean it is the best row and the target is met without a comparison; when a recipe is lower, the
    pick's interval against that recipe decides."""
    rng = np.random.default_rng(1)
    shared = {k: rng.normal(0, 0.004) for k in range(5)}
    finals = {text: {k: m + shared[k] + rng.normal(0, 0.006) for k in range(5)}
              for text, m in (("crop+flip", 0.380), ("none", 0.410), ("+ TA", 0.383))}
    summary = e2e.pick_versus_recipes(finals, "crop+flip", ["none", "+ TA"], same="crop+flip")
    assert summary["best_recipe_row"] == "crop+flip" and summary["never_worse_met"] and summary["family"] == 2
    assert summary["rows"]["+ TA"]["interval"][1] > 0.3  # 5 seeds cannot resolve it: met only as the best row
    finals["+ TA"] = {k: v - 0.02 for k, v in finals["+ TA"].items()}  # now well below the pick
    summary = e2e.pick_versus_recipes(finals, "crop+flip", ["none", "+ TA"], same="crop+flip")
    assert summary["best_recipe_row"] == "+ TA" and not summary["never_worse_met"]


def test_proxy_fidelity_is_the_rank_correlation_with_its_interval(e2e):
    rewards = [0.80, 0.82, 0.85, 0.86, 0.90, 0.91]
    results = {"proxy": {"policies": {str(i): {"reward": r, "test_error": 0.2 - r / 10, "policy": {}}
                                      for i, r in enumerate(rewards)}}}
    assert e2e._proxy_fidelity(results)
    fidelity = results["proxy"]["spearman"]
    assert fidelity["rho"] == pytest.approx(1.0) and fidelity["policies"] == 6
    results["proxy"]["policies"]["0"]["test_error"] = 0.0  # the worst reward is now the best model
    e2e._proxy_fidelity(results)
    low, high = results["proxy"]["spearman"]["interval"]
    assert -1 < low < results["proxy"]["spearman"]["rho"] < high < 1
