"""Search reports: the pictures of a finished (or running) search, for notebooks and files.

* [`load_search()`][keras_augtune.report.load_search]: the trials of an [`AugmentTuner`][keras_augtune.AugmentTuner], or of a
  search directory on disk (no tuner object needed), as a [`SearchResults`][keras_augtune.results.SearchResults];
* [`plot_rewards()`][keras_augtune.plot.plot_rewards]: reward per trial, the best so far, and the no-augmentation
  baseline as a line;
* [`op_effects()`][keras_augtune.AugmentTuner.op_effects] and [`plot_op_effects()`][keras_augtune.plot.plot_op_effects]: which ops help the reward and how much,
  pooled over the policy's slots ([`keras_augtune.effects`][keras_augtune.effects]);
* [`plot_importances()`][keras_augtune.plot.plot_importances]: how much each hyperparameter explains the rewards,
  per the oracle's random forest;
* [`policies_table()`][keras_augtune.report.policies_table]: the top policies as rows (reward, gain, accuracy, ops);
* [`plot_best_policy_examples()`][keras_augtune.report.plot_best_policy_examples]: augmentation grids of the best policies
  ([`keras_augtune.plot.plot_policy_examples()`][keras_augtune.plot.plot_policy_examples]);
* [`write_report()`][keras_augtune.report.write_report]: all of the above in one self-contained HTML file (images
  embedded as base64 PNG), or a one-page PNG.

    from keras_augtune import report
    report.plot_rewards(tuner)                     # inline in Jupyter
    report.write_report(tuner, "report.html")
    report.write_report("augtune_runs", "report.html")   # from disk alone

Every plotting function returns a `matplotlib.figure.Figure` built on the
Agg canvas (no display needed) and saves it to ``path`` when one is given.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import json
import os
import textwrap
import warnings
from typing import Any

import numpy as np

from keras_augtune.data import one_per_class
from keras_augtune.effects import MIN_OP_TRIALS, OpEffects, estimate_op_effects
from keras_augtune.files import atomic_write
from keras_augtune.plot import importances_by_kind, new_figure, plot_importances, plot_op_effects, plot_rewards, save_figure
from keras_augtune.policy import Policy
from keras_augtune.recipes import baseline_label
from keras_augtune.results import SearchResults, describe_policy, format_interval, format_value
from keras_augtune import repair
from keras_augtune.runs import RUN_FILE

__all__ = [
    "SearchResults", "load_search", "plot_rewards", "op_effects", "plot_op_effects", "plot_importances", "policies_table",
    "plot_best_policy_examples", "plot_summary", "write_report", "RUN_FILE", "SAMPLE_FILE",
]

#: A few images of the searched data (uint8), so a report can draw grids from disk alone.
SAMPLE_FILE = "sample_images.npz"


# ----------------------------------------------------------------------------- loading
def load_search(tuner_or_dir: Any, images: Any = None, value_range: Any = None) -> SearchResults:
    """The results of a search ([`SearchResults`][keras_augtune.results.SearchResults]), from an
    ``AugmentTuner`` (or any Keras Tuner tuner whose trials hold a policy) or from a
    directory on disk.

    A directory may be the output folder of ``keras-augtune search`` (holding ``run.json``),
    a Keras Tuner project directory (holding ``oracle.json`` and ``trial_*/``), or a folder
    holding exactly one such project. ``images`` (a few, for the augmentation grids)
    default to the tuner's data or to the run's ``sample_images.npz``.
    """
    run = None
    space = None
    if isinstance(tuner_or_dir, (str, os.PathLike)):
        project_dir, run = repair.find_project(os.fspath(tuner_or_dir))
        oracle = repair.reload_oracle(project_dir)
        if images is None:
            images, value_range = _sample_images(os.fspath(tuner_or_dir), project_dir, value_range)
    elif hasattr(tuner_or_dir, "oracle"):
        tuner = tuner_or_dir
        oracle = tuner.oracle
        space = getattr(tuner, "policy_space", None)
        project_dir = str(getattr(tuner, "project_dir", ""))
        data = getattr(tuner, "dataset", None)
        if images is None and data is not None:
            images = data.x[one_per_class(data.y, 8)]
            value_range = data.value_range if value_range is None else value_range
    else:
        raise TypeError(
            f"load_search needs an AugmentTuner or a search directory, got {type(tuner_or_dir).__name__}."
        )
    channels = getattr(tuner_or_dir, "_channels", None)
    if channels is None and images is not None:
        channels = 1 if np.ndim(images) == 3 else int(np.shape(images)[-1])
    try:
        results = SearchResults.from_oracle(oracle, space, project_dir, channels=channels)
    except RecursionError:  # an execution record nested too deeply for Python's JSON reader
        damaged = repair.damaged_execution_records(project_dir)
        raise ValueError(f"Cannot read the search in {project_dir}: {', '.join(damaged) or 'an execution record'} "
                         "is damaged (nested too deeply); 'keras-augtune search --resume' sets it aside, or move "
                         "it away.") from None
    if hasattr(oracle, "hyperparameter_importances"):
        try:
            results.importances = dict(oracle.hyperparameter_importances())
            if sum(results.importances.values()) <= 1e-12:  # too few trials: the forest made no split
                results.importances = {}
        except Exception:  # a report must not fail on the insight panel
            results.importances = {}
    if images is not None:
        images = np.asarray(images)
        if images.ndim == 3:  # a batch of (H, W) grayscale images
            images = images[..., None]
        results.images = images[:8]
    results.value_range = None if value_range is None else tuple(value_range)
    results.run = run
    return results


def _sample_images(path: str, project_dir: str, value_range):
    for folder in (path, project_dir):
        file = os.path.join(folder, SAMPLE_FILE)
        if os.path.isfile(file):
            try:
                with np.load(file, allow_pickle=False) as data:
                    vr = tuple(float(v) for v in data["value_range"].tolist()) if "value_range" in data.files else value_range
                    return data["x"], vr
            except Exception as exc:  # any damage: the report goes on without its grids
                warnings.warn(repair.DamagedFileWarning(
                    f"skipped the damaged file {file} ({type(exc).__name__}: {str(exc)[:100]}): the report has no "
                    "augmentation grids (pass --data to draw them)"), stacklevel=3)
    return None, value_range


# ----------------------------------------------------------------------------- figures
def _results(results: Any) -> SearchResults:
    return results if isinstance(results, SearchResults) else load_search(results)


def op_effects(results: Any, **options: Any) -> OpEffects:
    """Every op's estimated effect on the reward, best first ([`keras_augtune.effects.estimate_op_effects()`][keras_augtune.effects.estimate_op_effects],
    ``options`` as it takes them). ``results``: a [`SearchResults`][keras_augtune.results.SearchResults], a tuner or a search directory."""
    return estimate_op_effects(_results(results), **options)


def policies_table(results: Any, n: int = 5) -> list[dict[str, Any]]:
    """The ``n`` best policies as rows: rank, trial, reward, gain, gain_interval, executions, val_accuracy,
    policy, hyperparameters."""
    results = _results(results)
    return [{"rank": rank, "trial": t.trial_id, "reward": t.reward, "gain": t.gain, "gain_interval": t.gain_interval,
             "executions": t.executions, "val_accuracy": t.val_accuracy,
             "policy": describe_policy(t.policy), "hyperparameters": t.hyperparameters}
            for rank, t in enumerate(results.best(n), start=1)]


def best_policies(results: Any, n: int = 3) -> list[Policy]:
    """The ``n`` best augmentation policies (no-augmentation trials skipped), each named
    by its trial, reward and gain in ``metadata["name"]`` (the title of its grid)."""
    results = _results(results)
    out = []
    for t in results.best(n, skip_identity=True):
        policy = t.to_policy()
        policy.metadata["name"] = f"trial {t.trial_id}: reward {t.reward:.4f}" + (
            "" if t.gain is None else f" ({t.gain:+.4f})")
        out.append(policy)
    return out


def plot_best_policy_examples(results: Any, n: int = 3, images: Any = None, num_images: int = 4,
                              num_augmentations: int = 5, seed: int = 0, path_pattern: str | None = None):
    """Augmentation grids ([`keras_augtune.plot.plot_policy_examples()`][keras_augtune.plot.plot_policy_examples]) of the ``n`` best
    policies (the no-augmentation baseline skipped). Returns a list of figures; with
    ``path_pattern`` (e.g. ``"best_{rank}.png"``) each is saved too."""
    from keras_augtune.plot import plot_policy_examples

    results = _results(results)
    images = results.images if images is None else np.asarray(images)
    if images is None:
        raise ValueError("No images to draw on: pass images=..., or load the search from a tuner or a "
                         "'keras-augtune search' folder (which keeps a few sample images).")
    figures = []
    for rank, policy in enumerate(best_policies(results, n), start=1):
        path = None if path_pattern is None else path_pattern.format(rank=rank)
        figures.append(plot_policy_examples(policy, images[:num_images], num_augmentations=num_augmentations,
                                            seed=seed, value_range=results.value_range, path=path))
    return figures


def plot_summary(results: Any, path: Any = None, n: int = 5):
    """One page: rewards, op effects and the top-policies table (the PNG report), sized to its content."""
    results = _results(results)
    rows = policies_table(results, n)
    cells = [[r["rank"], r["trial"], format_value(r["reward"]), format_value(r["gain"], "+.4f"),
              format_value(r["val_accuracy"]), _wrap(r["policy"], 95)] for r in rows]
    lines = sum(1 + c[5].count("\n") for c in cells)
    effects = estimate_op_effects(results)
    shown = min(len(effects.estimated), 14)
    top_height = max(3.6, 0.9 + 0.24 * shown)
    table_height = 0.6 + 0.135 * (lines + 1)
    fig = new_figure(11.0, top_height + table_height)
    top, bottom = fig.subfigures(2, 1, height_ratios=[top_height, table_height])
    left, right = top.subplots(1, 2, width_ratios=[1.0, 1.1])
    plot_rewards(results, ax=left)
    plot_op_effects(effects, top=14, ax=right)
    ax = bottom.subplots()
    ax.set_axis_off()
    if cells:
        table = ax.table(cellText=cells, colLabels=["rank", "trial", "reward", "gain", "val acc", "policy"],
                         loc="upper center", cellLoc="left", colWidths=[0.05, 0.06, 0.07, 0.08, 0.07, 0.67],
                         bbox=[0.0, 0.0, 1.0, 1.0])
        table.auto_set_font_size(False)
        table.set_fontsize(6.5)
        heights = [1] + [1 + c[5].count("\n") for c in cells]
        for (r, _), cell in table.get_celld().items():
            cell.set_height(heights[r] / sum(heights))
            cell.PAD = 0.02
    else:
        ax.text(0.5, 0.5, "No completed trial yet.", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"Top policies ({_baseline_text(results)})\n{textwrap.fill(results.verdict().text, 150)}",
                 fontsize=9)
    fig.suptitle(f"keras_augtune search: {_folder(results)}", fontsize=11)
    save_figure(fig, path, dpi=100)
    return fig


# ----------------------------------------------------------------------------- report
def write_report(tuner_or_dir: Any, out_path: Any, num_policies: int = 5, num_grids: int = 3,
                 images: Any = None, value_range: Any = None) -> str:
    """Write the report of a search to ``out_path`` and return the path.

    ``.html`` (default for any other extension): a self-contained page, images embedded
    as base64 PNG: reward per trial with the best so far and the baseline, the top
    ``num_policies`` policies as a table, which ops help (op effects), augmentation grids
    of the best ``num_grids``, and the hyperparameter importances. ``.png``: one page with
    the rewards, the op effects and the table.

    ``tuner_or_dir``: an ``AugmentTuner``, a search directory, or a [`SearchResults`][keras_augtune.results.SearchResults].
    """
    if isinstance(tuner_or_dir, SearchResults):
        results = tuner_or_dir
    else:
        results = load_search(tuner_or_dir, images=images, value_range=value_range)
    out_path = os.fspath(out_path)
    if os.path.dirname(out_path):
        os.makedirs(os.path.dirname(out_path), exist_ok=True)
    if out_path.lower().endswith(".png"):
        plot_summary(results, out_path, n=num_policies)
        return out_path
    atomic_write(out_path, _html(results, num_policies, num_grids))
    return out_path


def _png_base64(fig, dpi: int = 100) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _untitled(fig):
    """``fig`` without its axes' titles: in the HTML report a section heading names the plot."""
    for ax in fig.axes:
        ax.set_title("")
    return fig


def _img(fig, alt: str, dpi: int = 100) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png_base64(fig, dpi)}">'


def _wrap(text: str, width: int) -> str:
    parts, line = [], ""
    for piece in text.split(" | "):
        candidate = piece if not line else f"{line} | {piece}"
        if len(candidate) > width and line:
            parts.append(line)
            line = piece
        else:
            line = candidate
    parts.append(line)
    return "\n".join(parts)


def _folder(results: SearchResults) -> str:
    """Where the search lives: the output folder of ``keras-augtune search`` (not its Keras
    Tuner project inside), else the project directory."""
    if results.run is not None and results.project_dir:
        return os.path.dirname(os.path.normpath(results.project_dir))
    return results.project_dir


def _baseline_text(results: SearchResults) -> str:
    if results.baseline_reward is None:
        return "no baseline trial"
    return f"{results.baseline_title} reward {results.baseline_reward:.4f}"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;width:100%}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pos{color:#16794a}.neg{color:#b3261e}img{max-width:100%}code{font-size:.9em}.muted{color:#666}
.grids{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:.5em 1.5em}
figure{margin:0}figcaption{font-weight:600;font-size:.9em;margin:.4em 0}
details{margin:.5em 0}summary{cursor:pointer;color:#444}
"""


def _effects_section(results: SearchResults) -> list[str]:
    """The report's answer to "which augmentations help?": the op-effects plot, its numbers
    (folded), the ops left out, and how the numbers were made."""
    esc = html.escape
    parts = ["<h2>Which augmentations help</h2>"]
    effects = estimate_op_effects(results)
    if effects.note or not effects.estimated:
        why = effects.note or f"need ops used by at least {MIN_OP_TRIALS} completed trials"
        return parts + [f"<p class='muted'>Op effects {esc(why)}</p>"]
    parts.append(_img(_untitled(plot_op_effects(effects)), "op effects"))
    parts.append("<details><summary>The numbers</summary><table><tr><th>op</th><th>effect</th>"
                 f"<th>{effects.confidence:.0%} interval</th><th>helps at magnitude</th><th>trials</th><th>verdict</th></tr>")
    for e in effects.estimated:
        cls = {"helps": "pos", "hurts": "neg"}.get(e.verdict, "")
        helps = "" if e.helps_at is None else f"{e.helps_at[0]:.2f}&ndash;{e.helps_at[1]:.2f}"
        parts.append(f"<tr><td>{esc(e.op)}</td><td class='num {cls}'>{e.effect:+.4f}</td>"
                     f"<td class='num'>[{e.low:+.4f}, {e.high:+.4f}]</td><td>{helps}</td>"
                     f"<td class='num'>{e.trials}</td><td class='{cls}'>{e.verdict}</td></tr>")
    parts.append("</table></details>")
    parts.extend(f"<p>{esc(line)}</p>" for line in effects.footnotes())
    parts.append(f"<p class='muted'>{esc(effects.method())}</p>")
    return parts


def _race_html(race) -> list[str]:
    """The race's table: each raced configuration's reward and gains over no augmentation and the best recipe."""
    def versus(c):
        if c is None:
            return "&ndash;"
        return f"{c.gain:+.4f}" + (f" [{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]" if c.interval else "")

    parts = [f"<h2>The race: searched policies against the recipes and {baseline_label(race.plan.get('base'))}</h2>",
             "<table><tr><th>configuration</th><th>kind</th><th>runs</th><th>reward</th>"
             f"<th>vs {race.baseline_short}</th><th>vs best recipe</th></tr>"]
    parts += [f"<tr><td>{html.escape(r.name)}</td><td>{r.kind}</td><td class='num'>{r.executions}</td>"
              f"<td class='num'>{r.mean:.4f}</td><td class='num'>{versus(r.vs_none)}</td>"
              f"<td class='num'>{versus(r.vs_recipe)}</td></tr>" for r in race.rows()]
    parts.append("</table><p class='muted'>Fresh paired executions (none used by a trial); 95% intervals "
                 "corrected over the rows. The verdict above uses the confirmation executions only.</p>")
    return parts


def _html(results: SearchResults, num_policies: int, num_grids: int) -> str:
    esc = html.escape
    done, trials = results.completed, results.trials
    failed = results.unsuccessful
    verdict = results.verdict()
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>keras_augtune search report</title>", f"<style>{_CSS}</style></head><body>",
        "<h1>keras_augtune search report</h1>",
        f"<p class='muted'>{esc(_folder(results))} &middot; written "
        f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}</p>",
        f"<p class='verdict {'pos' if verdict.better else 'neg'}'><strong>{esc(verdict.text)}</strong></p>",
        "<ul>",
        f"<li>{len(trials)} trials: {len(done)} completed, {len(failed)} failed</li>",
        f"<li>{esc(_baseline_text(results))}</li>",
    ] + ([f"<li>Every configuration followed the base recipe <strong>{esc(results.base_name)}</strong>: use the base, "
          "then the recommended policy (<code>keras_augtune.load_augmentation</code>).</li>"] if results.base_name else [])
    if results.confirmation_text():
        parts.append(f"<li>{esc(results.confirmation_text())}</li>")
    if results.run:
        settings = ", ".join(f"{k}={v}" for k, v in results.run.get("settings", {}).items())
        if settings:
            parts.append(f"<li>settings: <code>{esc(settings)}</code></li>")
    parts.append("</ul>")

    if results.race is not None:
        parts += _race_html(results.race)
    parts.append("<h2>Reward per trial</h2>")
    parts.append(_img(_untitled(plot_rewards(results)), "reward per trial"))
    parts.append("<p class='muted'>Grey dot: the no-augmentation baseline trial; dashed line: its reward "
                 "(a band: the range of its runs' rewards, when it ran more than once); green: best reward so "
                 "far. The reward is the mean of the best validation accuracies among epochs that did not "
                 "overfit.</p>")

    parts.append("<h2>Top policies</h2>")
    rows = policies_table(results, num_policies)
    if rows:
        arch = any(r["hyperparameters"] for r in rows)
        parts.append("<table><tr><th>rank</th><th>trial</th><th>reward</th><th>gain</th><th>95% interval</th>"
                     "<th>runs</th><th>val acc</th>"
                     "<th>policy (sub-policies separated by |; op(probability, magnitude))</th>"
                     + ("<th>other hyperparameters</th>" if arch else "") + "</tr>")
        for r in rows:
            interval = r["gain_interval"]
            cls = "" if interval is None else ("pos" if interval[0] > 0 else "neg" if interval[1] < 0 else "")
            policy = "<br>".join(esc(p) for p in r["policy"].split(" | "))
            parts.append(
                f"<tr><td class='num'>{r['rank']}</td><td>{esc(r['trial'])}</td><td class='num'>{format_value(r['reward'])}</td>"
                f"<td class='num {cls}'>{format_value(r['gain'], '+.4f')}</td>"
                f"<td class='num {cls}'>{format_interval(interval)}</td><td class='num'>{r['executions'] or ''}</td>"
                f"<td class='num'>{format_value(r['val_accuracy'])}</td>"
                f"<td>{policy}</td>"
                + (f"<td><code>{esc(json.dumps(r['hyperparameters']))}</code></td>" if arch else "") + "</tr>")
        parts.append("</table>")
        parts.append("<p class='muted'>reward: the mean over the policy's executions (runs); gain: the mean paired "
                     "difference to no augmentation of the same model, on the same execution seeds, with its 95% "
                     "t-interval (two runs or more); green only when the whole interval lies above 0. The "
                     "confirmed policies (re-measured after the search) come first, by their mean.</p>")
    else:
        parts.append("<p>No completed trial yet.</p>")

    parts.extend(_effects_section(results))

    parts.append("<h2>The best policies on your images</h2>")
    if results.images is None:
        parts.append("<p class='muted'>No images available: pass <code>images=</code> to write_report.</p>")
    else:
        grids = 0
        parts.append("<div class='grids'>")
        for rank, policy in enumerate(best_policies(results, num_grids), start=1):
            from keras_augtune.plot import plot_policy_examples

            fig = plot_policy_examples(policy, results.images[:3], num_augmentations=5, seed=rank,
                                       value_range=results.value_range, title="")
            parts.append(f"<figure><figcaption>{esc(policy.metadata['name'])}</figcaption>"
                         f"{_img(fig, f'policy {rank} examples', dpi=70)}</figure>")
            grids += 1
        parts.append("</div>")
        if not grids:
            parts.append("<p>No augmentation policy has completed yet.</p>")

    parts.append("<h2>Hyperparameter importances</h2>")
    if results.importances:
        parts.append(_img(_untitled(plot_importances(results)), "hyperparameter importances"))
        kinds = importances_by_kind(results.importances)
        parts.append("<p>By kind: " + ", ".join(f"{esc(k)} {v:.0%}" for k, v in kinds.items()) + ".</p>")
        parts.append("<p class='muted'>Impurity-based importances of the oracle's random forest fitted to the "
                     "completed trials; with few trials they are rough.</p>")
    else:
        parts.append("<p class='muted'>Needs at least two completed trials.</p>")
    if failed:
        parts.append("<h2>Failed trials</h2><ul>")
        for t in failed:
            parts.append(f"<li>trial {esc(t.trial_id)}: {esc(t.reason)}</li>")
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
