"""Identical configurations must give identical final models: crop vs crop + a policy that changes no image (issue 21, item 6).

The digits end-to-end table showed configurations that should be identical (crop alone, and crop
followed by the searched policy when the search recommended no augmentation) differing on the
same seeds. This script trains the end-to-end benchmark's final digits model (its own
``train_final`` and ``batches``) on the same seeds for

* ``crop``: the crop step alone;
* ``crop + identity``: crop, then ``Policy.identity()`` applied by imgaug;
* ``crop + no-op policy``: crop, then a policy whose every step has probability 0,

and reports each seed's test error. ``--e2e`` points at another copy of ``end_to_end.py`` (e.g.
the version before the fix, in a git worktree) to measure it the same way.

Usage:
    python benchmarks/pairing_check.py --seeds 3 --epochs 8
    python benchmarks/pairing_check.py --e2e /path/to/old/benchmarks/end_to_end.py --tag before
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _common import machine, setup_paths  # noqa: E402

setup_paths()

CONFIGS = ("crop", "crop + identity", "crop + no-op policy")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--e2e", default=os.path.join(HERE, "end_to_end.py"), help="the end_to_end.py to measure")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--tag", default="after")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    spec = importlib.util.spec_from_file_location("e2e_under_test", args.e2e)
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    from keras_augtune import Policy

    e2e_args = e2e.parse_args(["--data", "digits", "--final-width", "32"])
    _, x, y, xt, yt, _ = e2e.load("digits")
    policies = {"crop": None, "crop + identity": Policy.identity(),
                "crop + no-op policy": Policy([[("rotate", 0.0, 0.5), ("shear", 0.0, 0.7)]])}
    started, errors = time.time(), {name: [] for name in CONFIGS}
    for seed in range(args.seeds):
        for name in CONFIGS:
            steps = [e2e.crop_flip(False)]
            if policies[name] is not None:
                steps.append(e2e.policy_step(policies[name]))
            error, _ = e2e.train_final(x, y, xt, yt, steps, 4000 + seed, e2e_args, 10, args.epochs)
            errors[name].append(error)
            print(f"seed {seed} {name:20s} test error {error:.4f}", flush=True)
    identical = all(errors[name] == errors["crop"] for name in CONFIGS)
    result = {"command": "python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]),
              "e2e": os.path.relpath(args.e2e), "seeds": args.seeds, "epochs": args.epochs, "errors": errors,
              "identical": identical, "minutes": (time.time() - started) / 60, **machine()}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"pairing_check_{args.tag}.json"), "w") as f:
        json.dump(result, f, indent=1)
    print("identical on every seed" if identical else "NOT identical", flush=True)


if __name__ == "__main__":
    main()
