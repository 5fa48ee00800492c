"""Search reports: from a tuner and from disk alone; files written, sizes sane."""

import os

import numpy as np
import pytest

from keras_augtune import AugmentTuner, PolicySpace, report
from keras_augtune.results import policy_from_values


@pytest.fixture(scope="module")
def tuner(tmp_path_factory, digits):
    x, y = digits
    t = AugmentTuner("simple", max_trials=3, child_epochs=1, batch_size=32, train_set_size=100,
                     policy_space=PolicySpace(num_sub_policies=2, ops_per_sub_policy=1,
                                              ops=["identity", "rotate", "invert", "translate-x"]),
                     num_initial_points=1, directory=str(tmp_path_factory.mktemp("rep")), project_name="p",
                     seed=1, verbose=0, confirm_top_k=1, confirm_executions=2, intensifier="confirmation")
    t.search(x, y)
    return t


def _png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_load_search_from_tuner_and_disk_agree(tuner):
    live = report.load_search(tuner)
    disk = report.load_search(tuner.project_dir)
    assert len(live.trials) == len(disk.trials) == 3
    assert live.baseline_reward == pytest.approx(tuner.baseline_reward())
    assert disk.baseline_reward == pytest.approx(tuner.baseline_reward())
    assert [t.trial_id for t in live.best(3)] == [t.trial_id for t in disk.best(3)]
    assert [p.sub_policies for p in report.best_policies(live, 2)] == [p.sub_policies for p in report.best_policies(disk, 2)]
    assert live.images is not None and disk.images is None  # a bare tuner directory keeps no images
    rows = report.policies_table(live, 5)
    assert {"rank", "gain", "gain_interval", "executions", "policy"} <= set(rows[0])
    assert [r["executions"] for r in rows] == [2, 2, 1]  # the confirmed policy and baseline first
    assert rows[0]["reward"] >= rows[1]["reward"]
    assert [t.confirmed_rank for t in disk.best(3)] == [t.confirmed_rank for t in live.best(3)] == [1, 2, None]


def test_plots_are_figures_and_files(tuner, tmp_path):
    results = report.load_search(tuner)
    for name, fn in [("rewards", report.plot_rewards), ("importances", report.plot_importances),
                     ("summary", report.plot_summary)]:
        path = tmp_path / f"{name}.png"
        fig = fn(results, path=path)
        assert fig.axes and path.stat().st_size > 5_000
        w, h = _png_size(path)
        assert 300 <= w <= 2_000 and 150 <= h <= 2_000
    figs = report.plot_best_policy_examples(results, n=2, num_images=2, num_augmentations=2,
                                            path_pattern=str(tmp_path / "best_{rank}.png"))
    assert 1 <= len(figs) <= 2 and (tmp_path / "best_1.png").is_file()


def test_write_report_html_from_tuner_and_from_dir(tuner, tmp_path, digits):
    html_path = report.write_report(tuner, tmp_path / "a.html")
    text = open(html_path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and text.count("data:image/png;base64,") >= 2
    assert "Reward per trial" in text and "Top policies" in text and "Hyperparameter importances" in text
    import html

    verdict = report.load_search(tuner).verdict()
    assert html.escape(verdict.text) in text and "95% interval" in text and "Confirmation: the 1 best policy" in text
    assert 10_000 < os.path.getsize(html_path) < 5_000_000
    # from the directory alone, with images given for the grids
    x, _ = digits
    disk = report.write_report(tuner.project_dir, tmp_path / "b.html", images=x[:4])
    assert open(disk, encoding="utf-8").read().count("data:image/png;base64,") >= 2
    png = report.write_report(tuner.project_dir, tmp_path / "c.png")
    assert os.path.getsize(png) > 10_000


def test_reward_plot_names_trials_as_the_table_does(tuner):
    results = report.load_search(tuner)
    fig = report.plot_rewards(results)
    ax = fig.axes[0]
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and set(labels) <= {t.trial_id for t in results.trials}  # "00", "01", ... as in the table
    # every legend swatch has the colour of the dots it names
    legend = ax.get_legend()
    for handle, text in zip(legend.legend_handles, legend.get_texts()):
        name = text.get_text()
        dots = [c for c in ax.collections if c.get_label() == name]
        if dots:
            assert np.allclose(handle.get_facecolor()[0], dots[0].get_facecolor()[0]), name
            assert len({tuple(c) for c in dots[0].get_facecolor()}) == 1, name  # one colour per label


def test_baseline_band_when_it_ran_more_than_once(tuner):
    results = report.load_search(tuner)
    ax = report.plot_rewards(results).axes[0]
    assert len(results.baseline.execution_rewards) == 2  # its own run and the confirmation's
    assert [p for p in ax.patches if p.get_label() == "no augmentation, 2 runs (range)"]
    results.baseline.execution_rewards = [0.5]
    ax = report.plot_rewards(results).axes[0]
    assert not [p for p in ax.patches if "runs (range)" in p.get_label()]
    results.baseline.execution_rewards = [0.5, 0.7, 0.6]
    ax = report.plot_rewards(results).axes[0]
    band = [p for p in ax.patches if p.get_label() == "no augmentation, 3 runs (range)"]
    assert band
    ys = band[0].get_path().transformed(band[0].get_patch_transform()).vertices[:, 1]
    assert min(ys) == pytest.approx(0.5) and max(ys) == pytest.approx(0.7)


def test_report_sections_header_and_grids(tuner, tmp_path, digits):
    results = report.load_search(tuner)
    results.run = {"settings": {"trials": 3, "epochs": 1}}
    text = open(report.write_report(results, tmp_path / "r.html"), encoding="utf-8").read()
    assert "Which augmentations help" in text and "settings: <code>trials=3, epochs=1</code>" in text
    folder = os.path.dirname(os.path.normpath(tuner.project_dir))
    assert f"<p class='muted'>{folder} &middot;" in text  # the output folder, not its project inside
    assert "<figcaption>trial " in text and "<h3>" not in text  # each grid named once, above it


def test_op_effects_from_the_report_module(tuner):
    effects = report.op_effects(tuner)
    assert effects.num_trials == 3 and "needs at least 4" in effects.table()
    fig = report.plot_op_effects(tuner)
    assert fig.axes and "needs at least" in fig.axes[0].texts[0].get_text()


def test_policy_from_values_and_errors(tmp_path):
    values = {"augment/sub_policy_0/op_0/op": "rotate", "augment/sub_policy_0/op_0/magnitude": 0.5,
              "augment/sub_policy_0/op_0/probability": 0.8, "augment/sub_policy_1/op_0/op": "invert",
              "augment/sub_policy_1/op_0/magnitude": 0.1, "augment/sub_policy_1/op_0/probability": 1.0,
              "width": 16}
    policy = policy_from_values(values)
    assert [[tuple(s) for s in sub] for sub in policy.sub_policies] == [[("rotate", 0.8, 0.5)], [("invert", 1.0, 0.1)]]
    assert policy_from_values({"width": 3}) is None
    with pytest.raises(FileNotFoundError, match="No search found"):
        report.load_search(str(tmp_path))
    with pytest.raises(TypeError):
        report.load_search(42)
