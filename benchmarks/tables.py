"""Regenerate the measured tables of docs/benchmarks.md, docs/install.md and docs/reliability.md from the results files in benchmarks/results/.

    python benchmarks/tables.py           # rewrite every table between its markers
    python benchmarks/tables.py --check   # change nothing; exit 1 naming each table that differs

A table in a page of `PAGES` sits between ``<!-- tables.py: NAME -->`` and ``<!-- /tables.py -->``;
NAME is a key of `TABLES`. Every number in those tables is computed here from the JSON that
``benchmarks/end_to_end.py`` wrote (means and 95 % t-intervals with the package's
``mean_interval``, paired differences over the seeds both rows have), so a typo, or a number
with no data behind it, cannot survive a regeneration; ``tests/test_docs_data.py`` runs the
check and also holds README's numbers to these tables.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
PAGES = [DOC, ROOT / "docs" / "install.md", ROOT / "docs" / "reliability.md"]
MARKER = re.compile(r"(<!-- tables\.py: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /tables\.py -->)", re.S)
NONE = "no augmentation"

# (label in the JSON, label in the page); the page's order
CIFAR_ROWS = [
    (NONE, NONE), ("crop+flip", "crop+flip"),
    ("crop+flip + TrivialAugment", "crop+flip + TrivialAugment (trained on the CPU)"),
    ("crop+flip + RandAugment(N=1, M=0.4)", "crop+flip + RandAugment(N=1, M=0.4) (validation-picked)"),
    ("crop+flip + searched policy", "crop+flip + searched policy (random forest, search seed 0)"),
    ("crop+flip + random-search best", "crop+flip + random-search best (search seed 0, same budget)"),
]
DIGITS_ROWS = [(label, label) for label in [
    NONE, "crop", "crop + TrivialAugment", "crop + RandAugment(N=1, M=0.2)", "crop + searched policy",
    "crop + searched policy × 1 (scale picked on validation)", "crop + random-search best", "crop + hyperband-search best"]]
METHODS = {"bayesian": 'random forest + EI (`method="bayesian"`)', "random": 'random search (`method="random"`)',
           "hyperband": '`method="hyperband"`'}


def load(name: str) -> dict:
    with open(RESULTS / f"{name}.json") as f:
        return json.load(f)


def interval(values: list[float]) -> tuple[float, float]:
    """Mean and 95 % t half-width (NaN for one value): the package's ``mean_interval``."""
    sys.path.insert(0, str(ROOT))
    from keras_augtune.evaluation.verdict import mean_interval

    mean, half = mean_interval(values)
    return mean, float("nan") if half is None else half


def finals(results: dict) -> dict[str, dict[int, float]]:
    """{label: {final seed: test error}}; files written before ``final_seeds`` existed used seeds 0, 1, ..."""
    seeds = results.get("final_seeds") or {label: list(range(len(e))) for label, e in results["finals"].items()}
    return {label: dict(zip(seeds[label], errors)) for label, errors in results["finals"].items()}


def paired(errors: dict[int, float], reference: dict[int, float]) -> tuple[float, float]:
    seeds = sorted(set(errors) & set(reference))
    return interval([errors[s] - reference[s] for s in seeds])


def minus(text: str) -> str:
    """The page's minus sign (U+2212) for negative numbers."""
    return re.sub(r"(?<![\w(])-(?=\d)", "−", text)


def signed(value: float) -> str:
    """A difference in points to 2 decimals with its sign; no "−0.00": an identical row's difference is 0
    whatever its sign bit."""
    return f"{round(value, 2) + 0.0:+.2f}"


def picked(search: int, name: str | None) -> str:
    """What one search's race picked."""
    return f"search {search}: {name or 'nothing beyond the base'}"


def points(mean_half: tuple[float, float]) -> str:
    return minus(f"{mean_half[0] * 100:+.2f} ± {mean_half[1] * 100:.2f} points")


def final_table(results: dict, rows: list[tuple[str, str]], decimals: int, relative_decimals: int,
                versus_none: bool = False) -> list[str]:
    """The final models' test errors: mean ± CI, per seed, relative to no augmentation, paired
    difference to the reference (and, with ``versus_none``, to no augmentation)."""
    data = finals(results)
    reference_label = results["reference"]
    reference, base = data[reference_label], data[NONE]
    base_mean = interval(list(base.values()))[0]
    seeds = sorted(base)
    header = (f"| final-model augmentation | test error, mean ± 95 % CI | per seed ({seeds[0]}–{seeds[-1]}) "
              f"| vs no augmentation (relative) | paired difference vs {reference_label} |")
    rule = "|---|---:|---|---:|---:|"
    if versus_none:
        header, rule = header + " paired difference vs no augmentation |", rule + "---:|"
    lines = [header, rule]
    for label, shown in rows:
        errors = data[label]
        mean, half = interval(list(errors.values()))
        cells = [shown, f"{mean * 100:.{decimals}f}% ± {half * 100:.{decimals}f}%",
                 ", ".join(f"{errors[s] * 100:.1f}%" for s in sorted(errors)),
                 "–" if label == NONE else minus(f"{(mean - base_mean) / base_mean * 100:+.{relative_decimals}f}%"),
                 "–" if label == reference_label else points(paired(errors, reference))]
        if versus_none:
            cells.append("–" if label == NONE else points(paired(errors, base)))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def cifar_final() -> list[str]:
    return final_table(load("end_to_end_cifar10-jpeg_gpu"), CIFAR_ROWS, decimals=1, relative_decimals=1)


def digits_final() -> list[str]:
    return final_table(load("end_to_end_digits"), DIGITS_ROWS, decimals=2, relative_decimals=0, versus_none=True)


def cifar_epochs() -> list[str]:
    lines = ["| epochs | no augmentation | crop+flip | crop+flip − none, paired |", "|---:|---:|---:|---:|"]
    for epochs, name in [(30, "end_to_end_cifar10-jpeg_gpu_30ep"), (60, "end_to_end_cifar10-jpeg_gpu")]:
        data = finals(load(name))
        cells = [f"{m * 100:.1f}% ± {h * 100:.1f}%" for m, h in (interval(list(data[k].values())) for k in (NONE, "crop+flip"))]
        lines.append(f"| {epochs} | {cells[0]} | {cells[1]} | {points(paired(data['crop+flip'], data[NONE]))} |")
    return lines


def _recommendation(search: dict) -> str:
    """The search's confirmed winner and its gain interval, or no augmentation, from its best policy."""
    policy = search["best_policy"]
    meta = policy.get("metadata", {})
    if all(op["op"] == "identity" for sub in policy["sub_policies"] for op in sub):
        return "**no augmentation** recommended (no policy beat it)"
    low, high = meta["gain_interval"]
    return minus(f"trial {int(meta['trial_id'])}: {meta['gain']:+.4f} [{low:+.4f}, {high:+.4f}] "
                 f"({meta['executions']} paired executions)")


def searches_table(name: str) -> list[str]:
    lines = ["| search | trials | wall time, confirmation included | best confirmed reward "
             "| its gain over no augmentation (95 % interval) |", "|---|---:|---:|---:|---|"]
    for search in load(name)["searches"]:
        lines.append(f"| {METHODS[search['method']]}, seed {search['seed']} | {search['completed']} | "
                     f"{search['wall_s'] / 60:.1f} min | {search['best_reward']:.4f} | {_recommendation(search)} |")
    return lines


def cifar_search_rewards() -> list[str]:
    """Searched − random search's best confirmed reward, per search seed (the target table's line)."""
    searches = load("end_to_end_cifar10-jpeg_search")["searches"]
    best = {(s["method"], s["seed"]): s["best_reward"] for s in searches}
    seeds = sorted({seed for _, seed in best})
    def text(seed):
        difference = best["bayesian", seed] - best["random", seed]
        both_none = best["bayesian", seed] == best["random", seed]  # both recommend the baseline: the same reward
        return f"seed {seed}: {difference:+.4f}" + (" (both no augmentation)" if both_none else "")

    return [minus("Searched − random search's best confirmed search reward, by search seed: "
                  + ", ".join(text(seed) for seed in seeds) + ".")]


def install_dry_run() -> list[str]:
    """What pip's resolver would install, per environment and command (benchmarks/install_dry_run.py)."""
    results = load("install_dry_run")
    lines = [f"| environment | command (`{results['script']}`, pip {results['pip']}, {results['when']}) "
             "| TensorFlow / CUDA distributions pip would install |", "|---|---|---|"]
    for case in results["cases"]:
        names = case.get("watched", [])
        cuda = [name for name in names if name.startswith("nvidia-")]
        watched = ", ".join(f"`{name}`" for name in names if name not in cuda) or "none (the installed one stays)"
        if cuda:
            watched += f" + {len(cuda)} NVIDIA CUDA libraries (`{cuda[0].split('==')[0]}`, …)"
        if "error" in case:
            watched = f"resolver error: {' '.join(case['error'])}"
        lines.append(f"| {case['environment']} | `{case['command']}` | {watched} |")
    return lines


def pairing_check() -> list[str]:
    """Per seed, the final digits model's test error for configurations that must be identical
    (benchmarks/pairing_check.py, run on end_to_end.py before and after its fix)."""
    configs = ("crop", "crop + identity", "crop + no-op policy")
    lines = ["| end_to_end.py | seed | " + " | ".join(configs) + " | identical |", "|---|---:|---:|---:|---:|---|"]
    for tag, name in (("before: one stream for every step", "pairing_check_before"),
                      ("after: a stream per step", "pairing_check_after")):
        results = load(name)
        for seed in range(results["seeds"]):
            errors = [results["errors"][c][seed] for c in configs]
            lines.append(f"| {tag} | {seed} | " + " | ".join(f"{e:.1%}" for e in errors)
                         + f" | {'yes' if len(set(errors)) == 1 else 'no'} |")
    return lines


def race_search(name: str) -> list[str]:
    """The race of a default search on real data (benchmarks/race_search.py's own Markdown)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from race_search import markdown

    return markdown(load(f"race_search_{name}")).rstrip("\n").splitlines()


def payoff(name: str, better_than_ta: bool = True, cost: str | None = None) -> list[str]:
    """One dataset of the payoff suite (issue 22): every row's final test error, the race's pick
    against each recipe row (the corrected intervals end_to_end.py computed with the package's
    ``contrasts``), proxy fidelity and cost, from ``end_to_end_<name>.json``. ``better_than_ta``:
    whether the set has that target (the digits and the medical set); ``cost``: the cost line, when
    the results file's own (the base row's final models as they were trained) is not the one to show."""
    results = load(f"end_to_end_{name}")
    data, labels, summary = finals(results), results["labels"], results["payoff"]
    seeds = sorted(data[labels["none"]])
    lines = [f"| final-model augmentation | test error, mean ± 95 % CI | per seed ({seeds[0]}–{seeds[-1]}) |",
             "|---|---:|---|"]
    order = [labels["none"], labels["base"], labels["ta"]]
    order += sorted(t for t in data if t.startswith(labels["ra_prefix"])) + [labels["race"]]
    order += [labels["random-race"]] if labels["random-race"] in data else []
    for label in order:
        mean, half = interval(list(data[label].values()))
        shown = label + (" (seed k: search k mod 3)" if label in (labels["race"], labels["random-race"]) else "")
        lines.append(f"| {shown} | {mean * 100:.2f}% ± {half * 100:.2f}% | "
                     + ", ".join(f"{data[label][s] * 100:.1f}%" for s in sorted(data[label])) + " |")
    lines += ["", f"| the race's pick − | difference, points | 95 % interval, simultaneous over {summary['family']} |",
              "|---|---:|---:|"]
    for label, row in summary["rows"].items():
        low, high = row["interval"]
        lines.append(minus(f"| {label} | {signed(row['difference'])} | [{signed(low)}, {signed(high)}] |"))
    picks = ", ".join(picked(p["search"], p["name"]) for p in summary["picks"])
    random_searches = [r for r in sorted(results["searches"], key=lambda r: r["seed"])
                       if r["method"] == "random" and "verdict" in r]
    if random_searches and labels["random-race"] in data:  # the same race after random search (equal cost)
        picks += "; random search's races: " + ", ".join(picked(r["seed"], r["verdict"]["name"])
                                                           for r in random_searches)
    lines += ["", f"Races' picks: {picks}. Best recipe row: {summary['best_recipe_row']}. Smallest difference "
              f"resolved: ±{summary['smallest_resolved_points']:.2f} points. Never worse than the best recipe "
              f"(upper end ≤ +{summary['never_worse_target_points']:.1f}): "
              f"**{'met' if summary['never_worse_met'] else 'not met'}**"
              + (f"; better than + TA (upper end < 0): **{'met' if summary['better_than_ta_met'] else 'not met'}**."
                 if better_than_ta else ".")]
    proxy = (results.get("proxy") or {}).get("spearman")
    if proxy:
        lines.append(minus(f"Proxy fidelity: Spearman ρ {proxy['rho']:+.2f} [{proxy['interval'][0]:+.2f}, "
                           f"{proxy['interval'][1]:+.2f}] over {proxy['policies']} policies."))
    costs = results.get("costs")
    if cost:
        lines.append(cost)
    elif costs:
        lines.append(f"Cost: search + race {costs['search_minutes']:.1f} min ({costs['trainings']:.0f} child "
                     f"trainings) = {costs['ratio']:.1f} × one final model ({costs['final_model_minutes']:.1f} min).")
    return lines


def cifar_payoff() -> list[str]:
    """The natural-image part of the payoff suite: reduced CIFAR-10 as the other datasets (`payoff`)
    from ``end_to_end_cifar10-jpeg_suite_cpu``, with no better-than-TA target (the issue sets it
    for the digits and the medical set) and the cost against one crop+flip final model trained with
    the machine to itself (``end_to_end_cifar10-jpeg_timing_cpu``), as the searches ran: the
    suite's final models trained two at a time, which makes each take about twice as long."""
    results, timing = load("end_to_end_cifar10-jpeg_suite_cpu"), load("end_to_end_cifar10-jpeg_timing_cpu")
    base, costs = results["labels"]["base"], results["costs"]
    alone = [seconds / 60 for seconds in timing["final_seconds"][base].values()]
    if timing["args"]["workers"] != 1 or not alone:
        raise ValueError("the CIFAR timing run must train its crop+flip model alone (--workers 1)")
    alone_minutes = sum(alone) / len(alone)
    cost = (f"Cost: search + race {costs['search_minutes']:.1f} min ({costs['trainings']:.0f} child trainings; the "
            f"{costs['searches']} random-forest searches, each alone on the machine) = "
            f"{costs['search_minutes'] / alone_minutes:.1f} × one crop+flip final model alone ({alone_minutes:.1f} min; "
            f"{costs['final_model_minutes']:.1f} min each when two train at a time).")
    return payoff("cifar10-jpeg_suite_cpu", better_than_ta=False, cost=cost)


def fault_sweep() -> list[str]:
    """Per fault, the cases run of the write points, how many resumed and how many ended identical
    to the uninterrupted run (benchmarks/fault_sweep.py)."""
    sweep = load("fault_sweep")
    points = sweep["write_points"]
    lines = ["| fault | cases run (of the write points) | resumed | identical to the uninterrupted run |",
             "|---|---:|---:|---:|"]
    for fault in sweep["faults"]:
        cases = [c for c in sweep["cases"] if c["fault"] == fault]
        lines.append(f"| {'kill -9' if fault == 'kill' else fault} | {len(cases)} of {points} | "
                     f"{sum(c['resume_exit'] == 0 for c in cases)} | {sum(c['identical'] for c in cases)} |")
    cases = sweep["cases"]
    lines.append(f"| all | {len(cases)} of {points * len(sweep['faults'])} | {sum(c['resume_exit'] == 0 for c in cases)} | "
                 f"{sum(c['identical'] for c in cases)} |")
    return lines


TABLES = {
    "fault-sweep": fault_sweep,
    "cifar-final": cifar_final,
    "cifar-epochs": cifar_epochs,
    "cifar-searches": lambda: searches_table("end_to_end_cifar10-jpeg_search"),
    "cifar-search-rewards": cifar_search_rewards,
    "digits-final": digits_final,
    "digits-searches": lambda: searches_table("end_to_end_digits"),
    "install-dry-run": install_dry_run,
    "pairing-check": pairing_check,
    "race-search-digits": lambda: race_search("digits"),
    "race-search-cifar": lambda: race_search("cifar10-jpeg_crop-flip"),
    "race-search-pneumonia-fidelity": lambda: race_search("pneumoniamnist-balanced_crop_fidelity"),
    "payoff-digits": lambda: payoff("digits_payoff"),
    "payoff-pneumonia": lambda: payoff("pneumoniamnist-balanced_payoff"),
    "payoff-cifar": cifar_payoff,
}


def render(page: str) -> tuple[str, list[str]]:
    """``page`` with every marked table regenerated, and the names of those that changed."""
    changed = []

    def replace(match: re.Match) -> str:
        name = match["name"]
        if name not in TABLES:
            raise SystemExit(f"unknown table {name!r} (known: {', '.join(TABLES)})")
        body = "\n".join(TABLES[name]()) + "\n"
        if body != match["body"]:
            changed.append(name)
        return match.group(1) + body + match.group(4)

    return MARKER.sub(replace, page), changed


def marker_names(page: str) -> list[str]:
    return [m["name"] for m in MARKER.finditer(page)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from the data")
    args = parser.parse_args(argv)
    found, failed = set(), False
    for path in PAGES:
        page = path.read_text(encoding="utf-8")
        new, changed = render(page)
        found |= set(marker_names(page))
        if args.check:
            for name in changed:
                print(f"{path.name}: table {name!r} differs from benchmarks/results (run python benchmarks/tables.py)")
            failed |= bool(changed)
        else:
            if changed:
                path.write_text(new, encoding="utf-8")
            print(f"{path.name}: {len(changed)} table(s) rewritten" + (f" ({', '.join(changed)})" if changed else ""))
    missing = sorted(set(TABLES) - found)
    if missing:
        print(f"no page has a marker for: {', '.join(missing)}")
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
