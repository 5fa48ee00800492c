"""Calibration of the recommendation (issue 21): false "better", power and the named gain's bias, by simulation.

Each simulated search runs 20 trials of a fake child with known true gains, proposed at random
(thousands of searches per setting, in seconds) and through the real ``RandomForestOracle``
(about 1-2 s per search on this machine's CPUs, so fewer: the race's fresh executions make
the null rates independent of who proposed the finalists; the power is not), then the default race (the top searched policies,
TrivialAugment, RandAugment on a small grid and the baseline on fresh paired executions) and its
decision (``benchmarks/_calibration.py`` holds the harness; ``tests/test_calibration.py`` runs it
with random proposals). Writes ``benchmarks/results/calibration.json`` and prints the Markdown
table published in ``docs/benchmarks.md``.

    python benchmarks/calibration.py --searches 2000 --oracle-searches 70
    python benchmarks/calibration.py --op-effects --searches 300
    python benchmarks/calibration.py --docs     # the docs section, from the two results files
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import shlex
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _calibration as calibration  # noqa: E402

from keras_augtune.intensifier.race import Race  # noqa: E402

GRID = ((2, 0.3), (2, 0.6))
MARKER = "## Calibration of the recommendation: the race and its verdict"


def _settings(args, race, proposer, searches, loads) -> dict:
    settings = {}
    for name in args.settings:
        setting = calibration.SETTINGS[name]
        began = time.time()
        outcomes = [calibration.simulate(setting, seed, race, top_k=args.top_k, proposer=proposer, recipe_grid=GRID)
                    for seed in range(searches)]
        settings[name] = calibration.summarise(setting, outcomes)
        settings[name]["seconds"] = round(time.time() - began, 1)
        loads.append(os.getloadavg()[0])
        print(f"{proposer} {name}: {json.dumps({k: settings[name][k] for k in ('better_rate', 'power', 'bias_sigma')})}",
              flush=True)
    return settings


def _headline(settings: dict) -> dict:
    """The figures the issue asks for, from one proposer's settings."""
    nulls = {n: s for n, s in settings.items() if s["null"]}
    planted = {n: s for n, s in settings.items() if not s["null"]}
    worst = max(nulls, key=lambda n: nulls[n]["better_rate"]) if nulls else None
    biased = max(settings, key=lambda n: abs(settings[n]["bias_sigma"]))
    over = max(planted, key=lambda n: planted[n]["searched_over_recipe_rate"]) if planted else None
    return {
        "false_better_rate": nulls[worst]["better_rate"] if worst else None,
        "false_better_interval": nulls[worst]["better_interval"] if worst else None, "false_better_setting": worst,
        "searched_over_recipe_rate": planted[over]["searched_over_recipe_rate"] if over else None,
        "searched_over_recipe_setting": over,
        "power": {f"{s['setting']['gain']:g}": s["power"] for s in planted.values()},
        "power_interval": {f"{s['setting']['gain']:g}": s["power_interval"] for s in planted.values()},
        "bias_sigma": settings[biased]["bias_sigma"], "bias_setting": biased,
        "settings": settings,
    }


def run(args) -> dict:
    race = Race(screen_executions=args.screen_executions, eta=args.eta, confirm_executions=args.confirm_executions)
    loads, start = [os.getloadavg()[0]], time.time()
    random = _settings(args, race, "random", args.searches, loads)
    oracle = _settings(args, race, "oracle", args.oracle_searches, loads) if args.oracle_searches else {}
    everything = list(random.values()) + list(oracle.values())
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/calibration.py", *sys.argv[1:]]),
        "searches_per_setting": args.searches, "oracle_searches_per_setting": args.oracle_searches,
        "trials": 20, "sigma": calibration.SIGMA, "shared_sd": calibration.SHARED_SD,
        "race": {"screen_executions": args.screen_executions, "eta": args.eta,
                 "confirm_executions": args.confirm_executions, "top_k": args.top_k,
                 "recipes": [p.metadata["name"] for p in calibration.recipes(GRID)]},
        **_headline(random),
        "oracle": _headline(oracle) if oracle else None,
        "cost": {"trainings_mean": max(s["trainings_mean"] for s in everything),
                 "race_trainings_mean": max(s["race_trainings_mean"] for s in everything), "search_trainings": 20},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": loads},
        "seconds": round(time.time() - start, 1),
    }


def _pct(rate, interval=None) -> str:
    return f"{rate:.1%}" + (f" [{interval[0]:.1%}, {interval[1]:.1%}]" if interval else "")


def _rows(settings: dict, proposer: str) -> list[str]:
    rows = []
    for name, s in settings.items():
        rows.append(f"| {name} | {proposer} | {s['searches']} | {_pct(s['better_rate'], s['better_interval'])} | "
                    f"{'—' if s['null'] else _pct(s['power'], s['power_interval'])} | "
                    f"{'—' if s['null'] else _pct(s['searched_over_recipe_rate'], s['searched_over_recipe_interval'])} | "
                    f"{s['bias_sigma']:+.3f} ± {s['bias_sigma_se']:.3f} | {s['pooled_share']:.0%} |")
    return rows


def markdown(results: dict) -> str:
    """The calibration table of ``docs/benchmarks.md``, from the results file."""
    race = results["race"]
    lines = [f"Race: top {race['top_k']} searched policies, {', '.join(race['recipes'])} and no augmentation; "
             f"screening rounds of {race['screen_executions']} executions (halving, eta {race['eta']}), then "
             f"{race['confirm_executions']} confirmation executions of the finalists; searches of "
             f"{results['trials']} trials; sigma = {results['sigma']}, shared noise sd {results['shared_sd']}; "
             f"{results['cost']['trainings_mean']:.0f} trainings per search in all "
             f"({results['cost']['search_trainings']} search + {results['cost']['race_trainings_mean']:.0f} race).", "",
             "| setting | proposals | searches | \"better\" said [95 % Wilson] | names a truly helpful one | "
             "searched said to beat an equal recipe | named gain's bias (sigma) | pooled |",
             "|---|---|---|---|---|---|---|---|"]
    lines += _rows(results["settings"], "random")
    if results.get("oracle"):
        lines += _rows(results["oracle"]["settings"], "RandomForestOracle")
    power = ", ".join(f"+{k} sigma {v:.1%}" for k, v in results["power"].items())
    lines += ["", f"Worst null setting (random proposals): "
                  f"{_pct(results['false_better_rate'], results['false_better_interval'])} false \"better\" "
                  f"({results['false_better_setting']}; target <= 3.5 %); power {power} "
                  f"(targets >= 50 % at +1, >= 80 % at +2); largest |bias| {results['bias_sigma']:+.3f} sigma "
                  f"({results['bias_setting']}; target <= 0.2).",
              f"Measured in {results['seconds']:.0f} s, load average "
              f"{', '.join(f'{x:.1f}' for x in results['machine']['load_average'])} "
              f"({results['machine']['cpus']} CPUs): `{results['command']}`"]
    return "\n".join(lines)


def run_effects(args) -> dict:
    """Op effects through the harness: null ops labelled, estimates inside their intervals, planted ops found."""
    loads, start, settings = [os.getloadavg()[0]], time.time(), {}
    for name, planted, noise in (("every op 0", False, "gauss"), ("every op 0, heavy-tailed (t3)", False, "t3"),
                                 ("rotate +2 sigma, invert -2 sigma per use", True, "gauss")):
        settings[name] = calibration.summarise_effects(
            [calibration.effects_search(seed, planted, noise) for seed in range(args.searches)])
        loads.append(os.getloadavg()[0])
        print(f"{name}: {settings[name]}", flush=True)
    return {"command": "python " + " ".join(shlex.quote(a) for a in ["benchmarks/calibration.py", *sys.argv[1:]]),
            "trials": 20, "sigma": calibration.SIGMA, "confidence": 0.9, "num_bootstrap": 200,
            "false_label_rate": max(s["false_label_rate"] for s in settings.values()),
            "settings": settings, "seconds": round(time.time() - start, 1),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": loads}}


def markdown_effects(results: dict) -> str:
    """The op-effects calibration table of ``docs/benchmarks.md``, from its results file."""
    lines = ["| setting | searches | null ops labelled \"helps\"/\"hurts\" [95 % Wilson] | estimate inside its "
             "interval | rotate labelled \"helps\" | invert labelled \"hurts\" |", "|---|---|---|---|---|---|"]
    for name, s in results["settings"].items():
        found = (f"{s['rotate_helps_rate']:.0%} | {s['invert_hurts_rate']:.0%}" if "rotate_helps_rate" in s else "— | —")
        lines.append(f"| {name} | {s['searches']} | {_pct(s['false_label_rate'], s['false_label_interval'])} "
                     f"({s['null_ops']} op estimates) | {s['inside_rate']:.0%} | {found} |")
    lines += ["", f"Measured in {results['seconds']:.0f} s, load average "
                  f"{', '.join(f'{x:.1f}' for x in results['machine']['load_average'])} "
                  f"({results['machine']['cpus']} CPUs): `{results['command']}`"]
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "**MET**" if ok else "**NOT MET**"


def docs_section(race: dict, effects: dict) -> str:
    """The calibration section of ``docs/benchmarks.md`` (its last), from the two results files."""
    power = race["power"]
    section = f"""## Calibration of the recommendation: the race and its verdict

Does the recommendation mean what it says? `benchmarks/calibration.py` simulates whole
searches on a fake child with known true gains (no training: the reward of configuration `c`
on execution `e` is 0.80 + its true gain + a noise shared by execution seed, sd
{race['shared_sd']}, which pairing cancels + an independent noise of sd σ = {race['sigma']}, Gaussian or
Student-t with 3 degrees of freedom, equal for every configuration or drawn in [σ/2, 2σ] per
configuration). Each search runs 20 trials (the baseline, then proposals: random policies of the
default space, or the real `RandomForestOracle` driven through Keras Tuner's oracle API), then
the race (`keras_augtune.intensifier.race.Race`, defaults) and its decision
(`keras_augtune.evaluation.verdict.decide`): a searched policy, the best recipe, or no
augmentation. "Better" is a decision that names anything but no augmentation; in the null
settings (nothing truly helps) every "better" is false. In the `rotate` settings every policy
that can apply `rotate` gains the stated amount — TrivialAugment and RandAugment can, so the right
answer is a recipe (or an equally good searched policy), and a searched policy said to beat the
best recipe is a false claim. The named gain's bias is the mean, over searches, of the gain over
no augmentation reported for the named configuration minus its true gain (0 for no augmentation).

The real oracle takes 1–2 s per simulated search on this machine (the forest's proposals), so
it ran {race['oracle_searches_per_setting']} searches per setting; random proposals ran {race['searches_per_setting']}. The race scores
the finalists on executions that picked none of them, so the null rates do not depend on who
proposed them; the oracle's rows agree with the random ones within their intervals.

{markdown(race)}

Targets: false "better" ≤ 3.5 % in every null setting: {_met(race['false_better_rate'] <= 0.035)}
({race['false_better_rate']:.1%}); power ≥ 50 % at +1σ: {_met(power['1'] >= 0.5)} ({power['1']:.1%}); ≥ 80 % at +2σ:
{_met(power['2'] >= 0.8)} ({power['2']:.1%}); |bias| ≤ 0.2σ: {_met(abs(race['bias_sigma']) <= 0.2)} ({race['bias_sigma']:+.3f}σ, {race['bias_setting']}: near
the detection threshold a "better" verdict selects the luckier confirmations). "Searched said to beat an equal
recipe" (target ≤ 3.5 %): worst {race['searched_over_recipe_rate']:.1%} ({race['searched_over_recipe_setting']}).
The cost is {race['cost']['trainings_mean']:.0f} trainings per search (20 search trials + {race['cost']['race_trainings_mean']:.0f} in the race), most of them the
{race['race']['confirm_executions']} confirmation executions of the three finalists: a +1σ gain needs that many paired executions
to be told from the noise half of the time.

### Op effects held to the same standard

The same harness, for `keras_augtune.effects.estimate_op_effects` (default 90 %, now
simultaneous over the ops labelled): 20-trial searches of random policies over the default
space's 31 ops, the reward 0.80 + Σ effect(op) × uses(op) + noise (σ = {effects['sigma']}).

{markdown_effects(effects)}

Target: "helps"/"hurts" on ≤ 5 % of the ops that do nothing: {_met(effects['false_label_rate'] <= 0.05)} ({effects['false_label_rate']:.2%}); every
estimate lies inside its interval (the intervals are centred on it). The price is power: with 20
trials for 31 ops a +2σ-per-use op is labelled in a minority of searches — the labels are
rare and trustworthy, and the ranking carries the rest.
"""
    return section


def write_docs() -> str:
    """Rewrite the calibration section at the end of ``docs/benchmarks.md`` from the results files."""
    race = json.loads((HERE / "results" / "calibration.json").read_text())
    effects = json.loads((HERE / "results" / "calibration_effects.json").read_text())
    path = HERE.parent / "docs" / "benchmarks.md"
    page, section = path.read_text(), docs_section(race, effects)
    if MARKER in page:
        page = page[:page.index(MARKER)]
    path.write_text(page.rstrip("\n") + "\n\n" + section)
    return section


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--searches", type=int, default=2000, help="simulated searches per setting, random proposals")
    parser.add_argument("--oracle-searches", type=int, default=80,
                        help="simulated searches per setting through the real RandomForestOracle (~1-2 s each)")
    parser.add_argument("--settings", nargs="+", default=list(calibration.SETTINGS), choices=list(calibration.SETTINGS))
    parser.add_argument("--top-k", type=int, default=4)
    parser.add_argument("--screen-executions", type=int, default=Race().screen_executions)
    parser.add_argument("--eta", type=int, default=Race().eta)
    parser.add_argument("--confirm-executions", type=int, default=Race().confirm_executions)
    parser.add_argument("--out", default=str(HERE / "results" / "calibration.json"))
    parser.add_argument("--op-effects", action="store_true",
                        help="calibrate the op effects instead (writes results/calibration_effects.json)")
    parser.add_argument("--docs", action="store_true",
                        help="only rewrite the calibration section of docs/benchmarks.md from the results files")
    args = parser.parse_args(argv)
    if args.docs:
        print(write_docs())
        return
    if args.op_effects:
        results = run_effects(args)
        out = HERE / "results" / "calibration_effects.json" if args.out == parser.get_default("out") else args.out
        pathlib.Path(out).write_text(json.dumps(results, indent=1) + "\n")
        print(markdown_effects(results))
        return
    results = run(args)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
