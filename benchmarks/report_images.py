"""Make the report pictures in docs/images/ from a real search, so they are remade with the report.

The pictures docs/cli.md shows are the report's own figures (`keras_augtune.report`): the one-page
summary (reward per trial with the no-augmentation band, op effects, the top policies and the
verdict headline), the op effects, and the augmentation grid of the best policy. They are drawn
from a finished search directory; by default the first search of the digits payoff run
(``benchmarks/end_to_end.py --data digits ... --tag _payoff``, see docs/benchmarks.md), whose
folder is kept under ``benchmarks/results/e2e_digits_payoff/`` on the machine that ran it::

    python benchmarks/report_images.py
    python benchmarks/report_images.py --run benchmarks/results/e2e_digits_payoff/bayesian_seed0 --data digits

Writes docs/images/report_{top,effects,grids}.png and benchmarks/results/report_images.json (which
run made them, when, and the verdict the pictures show).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default=os.path.join(HERE, "results", "e2e_digits_payoff", "bayesian_seed0"),
                   help="a finished search directory (an AugmentTuner project folder)")
    p.add_argument("--data", default="digits", help="the images the search ran on, as end_to_end.py --data takes "
                   "them (for the grids, when the folder keeps no sample images)")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "images"))
    p.add_argument("--results", default=os.path.join(HERE, "results", "report_images.json"))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not os.path.isdir(args.run):
        raise SystemExit(f"no search directory {args.run}: run the search first (see this script's docstring)")
    from end_to_end import load

    from keras_augtune import report

    _, x, y, _, _, _ = load(args.data)
    results = report.load_search(args.run, images=x[[int((y == c).argmax()) for c in sorted(set(y.tolist()))]])
    os.makedirs(args.out, exist_ok=True)
    paths = {name: os.path.join(args.out, f"report_{name}.png") for name in ("top", "effects", "grids")}
    report.plot_summary(results, paths["top"])
    report.plot_op_effects(report.op_effects(results), path=paths["effects"])
    report.plot_best_policy_examples(results, n=1, num_images=6, path_pattern=paths["grids"])
    verdict = results.verdict()
    record = {"command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
              "run": os.path.relpath(args.run, ROOT), "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "trials": len(results.completed), "verdict": verdict.text,
              "images": {name: os.path.relpath(path, ROOT) for name, path in paths.items()}}
    with open(args.results, "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
