"""The ``keras-augtune`` command line's grammar: its commands, options, defaults and help texts
(what `keras_augtune.cli` runs)."""

from __future__ import annotations

import argparse
import re
from typing import Any

from keras_augtune.checks import MAX_EPOCHS, MAX_IMAGE_SIZE, MAX_SEED, integer_kind

PROG = "keras-augtune"
DEFAULT_OUT = "augtune_runs"

#: ``search`` defaults, sized so that ``keras-augtune search`` finishes on 2 CPU cores in
#: well under 10 minutes (about 20 s per trial there).
SEARCH_DEFAULTS: dict[str, Any] = {
    "data": "digits",
    "image_size": None,  # digits: 32; a folder: its most common image size; .npz: as stored
    "trials": 16,
    "model": "simple",
    "method": "bayesian",
    "epochs": 8,
    "train_set_size": 800,
    "batch_size": 64,
    "initial_points": 6,
    "sub_policies": 5,
    "ops_per_sub_policy": 2,
    "ops": None,
    "seed": 0,
    "confirm_top_k": 4,
    "confirm_executions": 14,
    "intensifier": "race",
    "recipes": None,
    "race_epochs": None,
    "race_train_size": None,
    "base": None,
}
#: Settings a resumed run may change: the total, and what the race (or the confirmation) measures.
CHANGEABLE_ON_RESUME = ("trials", "confirm_top_k", "confirm_executions", "intensifier", "recipes", "race_epochs",
                        "race_train_size")
#: Settings that define a run: ``--resume`` takes them from the run's ``run.json``.
FIXED_ON_RESUME = [k for k in SEARCH_DEFAULTS if k not in CHANGEABLE_ON_RESUME]


# ----------------------------------------------------------------------------- parsing
def _int_at_least(minimum: int, maximum: int | None = None):
    """An argparse type: an integer >= ``minimum`` (and <= ``maximum``), with a one-line error otherwise."""
    kind = integer_kind(minimum)

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {kind}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be at most {maximum:,}, got {value:,}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)
_seed = _int_at_least(0, MAX_SEED)
_image_size = _int_at_least(1, MAX_IMAGE_SIZE)


def _op_list(text: str) -> list[str]:
    ops = [o.strip() for o in text.split(",") if o.strip()]
    if not ops:
        raise argparse.ArgumentTypeError("give op names separated by commas, e.g. rotate,shear-x,invert")
    return ops


def _recipe_list(text: str) -> list[str]:
    """Recipe names separated by commas (those inside a name's parentheses belong to it); ``none``: no recipe."""
    from keras_augtune.recipes import resolve_recipes

    if text.strip().lower() == "none":
        return []
    names = [re.sub(r",\s*", ", ", n.strip()) for n in re.split(r",(?![^()]*\))", text) if n.strip()]
    try:
        resolve_recipes(names)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return names


def _base(text: str) -> str:
    """A base recipe's name (``keras_augtune.recipes.BASE_RECIPES``; a misspelt one gets the closest
    suggested) or a policy .json file."""
    from keras_augtune.checks import check_choice
    from keras_augtune.recipes import BASE_RECIPES

    if text.lower().endswith(".json"):
        return text
    try:
        return check_choice("--base (a name, or a policy .json file)", text, tuple(BASE_RECIPES))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default once: not when its help already states it, nor a default of None or False."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


DATA_HELP = ("'digits' (scikit-learn's 1,797 handwritten digits, offline), an .npz file holding arrays "
             "'x' (N, H, W[, C]) and 'y' (N,), or a folder with one sub-folder of images per class")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Search the data-augmentation policy that suits your images (Keras Tuner, "
                    "random-forest Bayesian optimisation over imgaug policies).",
        epilog=f"Run '{PROG} COMMAND --help' for a command's options. Start with: {PROG} search",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    d = SEARCH_DEFAULTS
    search = commands.add_parser(
        "search", help="run (or resume) a policy search and write its results and report",
        description="Run a policy search: trial 0 trains the child model without augmentation (the "
                    "baseline), every later trial with a policy proposed by the oracle. Writes into "
                    "--out the Keras Tuner directory, notebook.csv (one row per trial and epoch), "
                    "best_policies.json and report.html. The best policies then race TrivialAugment, "
                    "RandAugment and no augmentation on fresh paired executions (an extra cost shown in the "
                    "log), and the verdict names a searched policy, a recipe or no augmentation, with gains "
                    "over both and 95% intervals corrected for the pick.",
        formatter_class=_HelpFormatter,
    )
    search.add_argument("--data", default=None, metavar="DATA", help=f"{DATA_HELP} (default: digits)")
    search.add_argument("--image-size", type=_image_size, default=None, metavar="PX",
                        help="resize images to PX x PX (default: 32 for digits, the most common size for "
                             "a folder, unchanged for .npz)")
    search.add_argument("--trials", type=_positive_int, default=None,
                        help=f"total trials, the baseline included and across resumed runs (default: {d['trials']})")
    search.add_argument("--model", default=None,
                        help="child model: simple, basiccnn, wrn_<depth>_<width> (e.g. wrn_16_2), mobilenetv2, "
                             f"inceptionv3 (default: {d['model']})")
    search.add_argument("--method", choices=["bayesian", "random", "hyperband"], default=None,
                        help=f"bayesian: random forest + expected improvement; random: random search; "
                             f"hyperband: multi-fidelity (brackets over epochs, --epochs the full budget, "
                             f"the forest proposing) (default: {d['method']})")
    search.add_argument("--epochs", type=_int_at_least(1, MAX_EPOCHS), default=None,
                        help=f"training epochs of each child model (default: {d['epochs']})")
    search.add_argument("--train-set-size", type=_positive_int, default=None, metavar="N",
                        help=f"training images per trial, a stratified subsample (default: {d['train_set_size']}, "
                             "or all when fewer)")
    search.add_argument("--batch-size", type=_positive_int, default=None, metavar="N",
                        help=f"training batch size of each child model (default: {d['batch_size']})")
    search.add_argument("--initial-points", type=_positive_int, default=None, metavar="N",
                        help=f"random trials before the forest proposes (default: {d['initial_points']})")
    search.add_argument("--sub-policies", type=_positive_int, default=None, metavar="N",
                        help=f"sub-policies per policy (default: {d['sub_policies']})")
    search.add_argument("--ops-per-sub-policy", type=_positive_int, default=None, metavar="N",
                        help=f"ops per sub-policy (default: {d['ops_per_sub_policy']})")
    search.add_argument("--ops", type=_op_list, default=None, metavar="OP,OP,...",
                        help="the ops to search over, comma-separated (default: all; see the docs' op table)")
    search.add_argument("--seed", type=_seed, default=None, help=f"random seed (default: {d['seed']})")
    search.add_argument("--intensifier", choices=["race", "confirmation"], default=None,
                        help="after the trials: race the best policies against the recipes and no augmentation on "
                             "fresh executions, or re-measure the best policies on their own (the confirmation) "
                             f"(default: {d['intensifier']})")
    search.add_argument("--confirm-top-k", type=_non_negative_int, default=None, metavar="K",
                        help="searched policies entering the race (or confirmed); 0: no race "
                             f"(default: {d['confirm_top_k']})")
    search.add_argument("--confirm-executions", type=_non_negative_int, default=None, metavar="N",
                        help="paired executions of the race's finalists (or of each confirmed policy); 0 or 1: "
                             f"off (default: {d['confirm_executions']})")
    search.add_argument("--recipes", type=_recipe_list, default=None, metavar="NAME,NAME,...",
                        help="the recipes raced, e.g. 'TrivialAugment,RandAugment(N=1,M=0.5)'; none: no recipe "
                             "(default: TrivialAugment, RandAugment(N=2, M=0.3) and RandAugment(N=2, M=0.6))")
    search.add_argument("--race-epochs", type=_int_at_least(1, MAX_EPOCHS), default=None, metavar="N",
                        help="child epochs of the race's trainings (default: --epochs)")
    search.add_argument("--race-train-size", type=_positive_int, default=None, metavar="N",
                        help="training images of each of the race's trainings, a stratified subsample per execution, "
                             "the same for every raced configuration (default: --train-set-size); up to all the "
                             "training images, the budget of your final model")
    search.add_argument("--base", type=_base, default=None, metavar="NAME|POLICY.json",
                        help="a base recipe every candidate is applied after (the trials, the recipes and the "
                             "baseline, which is then the base alone): crop-flip, crop, flip, or a policy file; "
                             "best_policies.json records it (default: none)")
    search.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help="output folder")
    search.add_argument("--resume", action="store_true",
                        help="continue the search in --out (its settings are kept; --trials sets the new total) "
                             "instead of starting a fresh one")
    search.add_argument("--overwrite", action="store_true",
                        help="start afresh in an --out that already holds a search (or other files): replaces "
                             "the search's files there, keeps every other file")
    search.add_argument("--top", type=_positive_int, default=5, help="policies printed and written to best_policies.json")
    search.add_argument("--no-report", action="store_true", help="do not write report.html")
    search.add_argument("-q", "--quiet", action="store_true", help="no per-trial lines or progress bar")
    search.add_argument("--debug", action="store_true", help="show tracebacks")
    search.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")

    show = commands.add_parser(
        "show", help="draw images beside random augmentations by a policy (a PNG grid)",
        description="Draw a grid PNG: each row an original image beside several random augmentations by the "
                    "policy. POLICY is best_policies.json (written by 'search') or a single policy JSON.",
        formatter_class=_HelpFormatter,
    )
    show.add_argument("policy", metavar="POLICY.json", help="policy file")
    show.add_argument("--data", default="digits", help=DATA_HELP)
    show.add_argument("--image-size", type=_image_size, default=None, metavar="PX", help="resize images (as in search)")
    show.add_argument("--rank", type=_positive_int, default=1, help="which policy of a best_policies.json (1 = best)")
    show.add_argument("--images", type=_int_at_least(1, 32), default=6, help="number of images (rows), at most 32")
    show.add_argument("--augmentations", type=_int_at_least(1, 20), default=5, help="augmented copies per image, at most 20")
    show.add_argument("--seed", type=_seed, default=0, help="random seed of the images and augmentations")
    show.add_argument("--out", default=None, metavar="PNG", help="output image (default: POLICY_grid.png beside POLICY)")
    show.add_argument("--debug", action="store_true", help="show tracebacks")
    show.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")

    report = commands.add_parser(
        "report", help="write the report of a search (HTML, or PNG)",
        description="Write the report of a search: reward per trial with the best so far and the no-augmentation "
                    "baseline, the top policies, augmentation grids of the best ones and the hyperparameter "
                    "importances the random forest learned. DIR is a 'search' output folder or a Keras Tuner "
                    "project directory of an AugmentTuner.",
        formatter_class=_HelpFormatter,
    )
    report.add_argument("dir", metavar="DIR", help="search folder")
    report.add_argument("--out", default=None, metavar="FILE.html|FILE.png",
                        help="report file, .html (self-contained) or .png (default: DIR/report.html)")
    report.add_argument("--top", type=_positive_int, default=5, help="policies in the table")
    report.add_argument("--data", default=None,
                        help="images for the augmentation grids when DIR has no sample_images.npz: " + DATA_HELP)
    report.add_argument("--image-size", type=_image_size, default=None, metavar="PX", help="resize those images")
    report.add_argument("--debug", action="store_true", help="show tracebacks")
    report.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")
    for command in (search, show, report):  # so that a command's mistakes show the command's usage
        command.set_defaults(command_parser=command)
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("keras-augtune")
    except Exception:
        return "unknown"
