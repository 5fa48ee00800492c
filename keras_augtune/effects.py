"""Op effects: how much each augmentation op moves the reward, and at which magnitudes, pooled over slots.

The question a search is run for is *which augmentations help my images, and how
strongly?* A policy's slots are interchangeable (``rotate`` in sub-policy 3 is the same
choice as ``rotate`` in sub-policy 0), so the answer is per op, pooled over slots:
[`estimate_op_effects()`][keras_augtune.effects.estimate_op_effects] reads the completed trials of a
[`SearchResults`][keras_augtune.results.SearchResults] (each trial's policy and reward) and gives
one [`OpEffect`][keras_augtune.effects.OpEffect] per op of the space.

How, and why this way
---------------------
Each trial is described by one number per op, its **uses**: the expected number of
sub-policies in which the op fires, ``sum over sub-policies of 1 - prod(1 - p)`` over the
op's steps there (a step counts only when it can change an image: not ``identity``, not a
zero probability, not a magnitude at which the op is the identity). The reward is
regressed on the uses of every op (plus the jointly tuned architecture values, if any) by
**ridge regression**, its penalty chosen by leave-one-out cross-validation. An op's
**effect** is its coefficient: the change in reward per sub-policy that applies the op,
relative to doing nothing there, the other ops held fixed. The **interval** is the
effect plus or minus ``z`` standard errors (the larger of the coefficient's standard
deviation over bootstrap resamples of the trials and the ridge sandwich error with the
leave-one-out noise), with ``z`` corrected for the number of ops labelled (Bonferroni: the
intervals of all the ops read hold together at ``confidence``), so that a "helps" or
"hurts" label on an op that does nothing is rare however many ops the space has.
The **magnitude range where it helps** comes from a second fit per op, in which the
op's column is split over three magnitude knots (the low end, middle and high end of the
magnitude range, linear in between): its effect becomes a piecewise-linear curve over the
magnitude, and the range is the longest stretch where that curve is more than one
standard error above 0 and at least two trials' worth of uses lie near by. Three knots is
all the resolution a dozen trials per op can give.

A search has 16-50 trials and a space has up to 30 ops, so there are about as many
unknowns as observations: an unpenalised fit would not exist, and a random forest's
partial dependence (the oracle's surrogate) would split on a handful of trials per op
and give no interval. The ridge penalty shrinks every effect towards 0 (no effect) and
the bootstrap interval shows how much the few trials can say; both make the estimates
*conservative*. Read them as a ranking with error bars, not as measured gains: the
bootstrap does not account for the penalty's bias or for the search concentrating on the
ops it already likes (later trials are not a random design), and an op used by fewer
than `MIN_OP_TRIALS` trials has no estimate worth reading (its verdict says "too few
trials" and tables list it apart). Confirm a candidate with repeated runs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator, Sequence

import numpy as np

from keras_augtune.ops import OP_NAMES, is_identity_at, resolve_op_list

__all__ = ["OpEffect", "OpEffects", "estimate_op_effects", "op_uses", "MIN_TRIALS", "MIN_OP_TRIALS"]

#: Completed trials needed before any effect is estimated.
MIN_TRIALS = 4
#: Trials that must use an op before its estimate is worth reading (fewer: verdict "too few trials").
MIN_OP_TRIALS = 3
#: Knots of the magnitude curves (fractions of the magnitude range).
KNOTS = (0.0, 0.5, 1.0)
#: Nearby uses (hat-weighted, in trials) a magnitude needs to count as supported.
MIN_SUPPORT = 2.0
#: Standard errors the local effect must clear for a magnitude to count as helping.
HELPS_Z = 1.0
_ALPHAS = np.logspace(-2, 2, 9)


@dataclasses.dataclass(frozen=True)
class OpEffect:
    """The estimated effect of one op on the reward (see [`keras_augtune.effects`][keras_augtune.effects]).

    ``effect``: reward change per sub-policy that applies the op (None when no completed
    trial used it, or there are too few trials); ``low``, ``high``: its bootstrap
    interval; ``helps_at``: the ``(low, high)`` magnitudes where the trials that use the
    op do better than the other ops explain (None: nowhere, or unknown); ``trials``: how
    many completed trials used the op; ``curve``: ``(magnitudes, local effect, its standard
    error, support)`` arrays behind ``helps_at`` (None when not estimated).
    """

    op: str
    effect: float | None
    low: float | None
    high: float | None
    helps_at: tuple[float, float] | None
    trials: int
    curve: tuple[np.ndarray, ...] | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def verdict(self) -> str:
        """``"helps"`` / ``"hurts"`` when the whole interval is above / below 0, ``"unclear"``
        otherwise; ``"too few trials"`` when fewer than `MIN_OP_TRIALS` trials used the
        op, ``"untried"`` when no estimate exists."""
        if self.effect is None:
            return "untried"
        if self.trials < MIN_OP_TRIALS:
            return "too few trials"
        if self.low is not None and self.low > 0:
            return "helps"
        if self.high is not None and self.high < 0:
            return "hurts"
        return "unclear"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able row (without the curve)."""
        return {"op": self.op, "effect": self.effect, "low": self.low, "high": self.high,
                "helps_at": None if self.helps_at is None else list(self.helps_at),
                "trials": self.trials, "verdict": self.verdict}


@dataclasses.dataclass
class OpEffects:
    """Every op's [`OpEffect`][keras_augtune.effects.OpEffect]: best first, then the ops used by too few trials, then the unused ones.

    Iterate over it, index it by position or look an op up by name (``effects["rotate"]``);
    [`table()`][keras_augtune.effects.OpEffects.table] is the text form the command line prints.
    """

    effects: list[OpEffect]
    num_trials: int  #: completed trials used
    confidence: float  #: of the intervals
    note: str = ""  #: why nothing was estimated, when so

    def __iter__(self) -> Iterator[OpEffect]:
        return iter(self.effects)

    def __len__(self) -> int:
        return len(self.effects)

    def __getitem__(self, key: int | str) -> OpEffect:
        if isinstance(key, str):
            for effect in self.effects:
                if effect.op == key:
                    return effect
            raise KeyError(f"No op {key!r} in these effects; ops: {', '.join(e.op for e in self.effects)}.")
        return self.effects[key]

    @property
    def estimated(self) -> list[OpEffect]:
        """The ops with an estimate worth reading (used by at least `MIN_OP_TRIALS`
        trials), best first."""
        return [e for e in self.effects if e.effect is not None and e.trials >= MIN_OP_TRIALS]

    @property
    def too_few(self) -> list[OpEffect]:
        """The ops used by some trials, but fewer than `MIN_OP_TRIALS`, best first."""
        return [e for e in self.effects if e.effect is not None and e.trials < MIN_OP_TRIALS]

    @property
    def unused(self) -> list[OpEffect]:
        """The ops no completed trial applied (or none that could change the images)."""
        return [e for e in self.effects if e.effect is None]

    def to_rows(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.effects]

    def method(self) -> str:
        """One sentence on how the numbers were made (for tables and reports)."""
        return (f"Ridge regression of the reward on each op's uses over {self.num_trials} completed trials, "
                f"pooled over slots; bootstrap intervals simultaneous over the ops at {self.confidence:.0%}. "
                "Effect = reward change per "
                "sub-policy applying the op. Shrunk towards 0 and rough with few trials: a ranking, not a "
                "measured gain.")

    def table(self, limit: int | None = None) -> str:
        """The effects as a text table (``limit``: at most that many estimated rows, the best
        and the worst halves); ops never used are listed on one line."""
        if self.note:
            return f"Op effects: {self.note}"
        rows = self.estimated
        if limit is not None and len(rows) > limit:
            rows = rows[: (limit + 1) // 2] + rows[len(rows) - limit // 2:]
        width = max([len(e.op) for e in rows] + [2])
        level = f"{self.confidence:.0%}"
        lines = [f"Op effects on the reward ({self.num_trials} completed trials, pooled over slots; "
                 "per sub-policy applying the op):",
                 f"{'op':<{width}}  {'effect':>8}  {level + ' interval':^20}  {'helps at':<11}  {'trials':>6}  verdict"]
        for e in rows:
            interval = f"[{e.low:+.4f}, {e.high:+.4f}]"
            helps = "" if e.helps_at is None else f"{e.helps_at[0]:.2f}-{e.helps_at[1]:.2f}"
            lines.append(f"{e.op:<{width}}  {e.effect:>+8.4f}  {interval:^20}  {helps:<11}  {e.trials:>6}  {e.verdict}")
        if limit is not None and len(self.estimated) > limit:
            lines.append(f"({len(self.estimated) - limit} ops in the middle not shown)")
        lines.extend(self.footnotes())
        return "\n".join(lines)

    def footnotes(self) -> list[str]:
        """The lines naming the ops left out of the table: too few trials, never applied."""
        lines = []
        if self.too_few:
            lines.append(f"Used by fewer than {MIN_OP_TRIALS} trials (no estimate worth reading): "
                         + ", ".join(f"{e.op} ({e.trials})" for e in self.too_few) + ".")
        if self.unused:
            lines.append("Never applied by a completed trial: " + ", ".join(e.op for e in self.unused) + ".")
        return lines


# ----------------------------------------------------------------------------- features
def op_uses(policy: Any, ops: Sequence[str], channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Per op of ``ops``: its uses in ``policy`` (the expected number of sub-policies in which
    it fires; steps that cannot change an image with ``channels`` channels do not count) and
    its mean magnitude over those steps (weighted by probability; NaN where unused)."""
    index = {op: k for k, op in enumerate(ops)}
    uses = np.zeros(len(ops))
    magnitude_sum = np.zeros(len(ops))
    weight = np.zeros(len(ops))
    for sub in policy.sub_policies:
        miss: dict[int, float] = {}
        for step in sub:
            k = index.get(step.op)
            if k is None or step.probability <= 0.0 or is_identity_at(step.op, step.magnitude, channels):
                continue
            miss[k] = miss.get(k, 1.0) * (1.0 - step.probability)
            magnitude_sum[k] += step.probability * step.magnitude
            weight[k] += step.probability
        for k, m in miss.items():
            uses[k] += 1.0 - m
    with np.errstate(invalid="ignore", divide="ignore"):
        magnitude = np.where(weight > 0, magnitude_sum / np.maximum(weight, 1e-12), np.nan)
    return uses, magnitude


def _covariates(trials: list[Any]) -> np.ndarray:
    """The architecture values of ``trials`` as standardised columns (numbers) and one-hot
    columns (other values, first level dropped); constant ones left out."""
    names = sorted({name for t in trials for name in t.hyperparameters})
    columns = []
    for name in names:
        values = [t.hyperparameters.get(name) for t in trials]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            column = np.asarray(values, dtype=float)
            if column.std() > 0:
                columns.append((column - column.mean()) / column.std())
        else:
            levels = sorted({repr(v) for v in values})
            for level in levels[1:]:
                columns.append(np.asarray([repr(v) == level for v in values], dtype=float))
    return np.column_stack(columns) if columns else np.zeros((len(trials), 0))


# ----------------------------------------------------------------------------- estimate
def estimate_op_effects(results: Any, space: Any = None, ops: Sequence[str] | None = None,
                        confidence: float = 0.9, num_bootstrap: int = 400, seed: int = 0,
                        channels: int | None = None) -> OpEffects:
    """Every op's estimated effect on the reward (see the module's docstring for the method).

    Args:
        results: a [`SearchResults`][keras_augtune.results.SearchResults] (each completed trial's
            policy and reward is read).
        space: the [`PolicySpace`][keras_augtune.space.PolicySpace] searched (default:
            ``results.space``): its ops are listed, and its magnitude range bounds the curves.
        ops: the ops to report (default: the space's; without a space, every op some trial used).
        confidence: joint level of the bootstrap intervals over the ops labelled, in (0, 1).
        num_bootstrap: bootstrap resamples (>= 50).
        seed: seed of the resampling (the result is deterministic for a given seed).
        channels: the images' channels (1 or 3): on grayscale, colour-only ops change
            nothing, so they count as unused. Default: from ``results.images`` when it
            holds images, else 3.

    Returns:
        [`OpEffects`][keras_augtune.effects.OpEffects], best first. With fewer than `MIN_TRIALS` completed trials
        nothing is estimated (``note`` says so).
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    if isinstance(num_bootstrap, bool) or not isinstance(num_bootstrap, int) or num_bootstrap < 50:
        raise ValueError(f"num_bootstrap must be an integer >= 50, got {num_bootstrap!r}.")
    space = getattr(results, "space", None) if space is None else space
    trials = [t for t in results.completed if t.policy is not None and t.reward is not None]
    if ops is None and space is not None:
        ops = space.ops
    if ops is None:
        used = {step.op for t in trials for sub in t.policy.sub_policies for step in sub}
        ops = [op for op in OP_NAMES if op in used]
    ops = [op for op in resolve_op_list(ops) if op != "identity"]  # identity is the reference: "do nothing"
    low_m, high_m = getattr(space, "magnitude_range", (0.0, 1.0))
    if channels is None:
        images = getattr(results, "images", None)
        channels = 1 if images is not None and np.ndim(images) == 4 and np.shape(images)[-1] == 1 else 3
    features = [op_uses(t.policy, ops, channels) for t in trials]
    uses = np.array([f[0] for f in features]).reshape(len(trials), len(ops))
    magnitudes = np.array([f[1] for f in features]).reshape(len(trials), len(ops))
    counts = (uses > 0).sum(axis=0)
    if len(trials) < MIN_TRIALS:
        note = f"needs at least {MIN_TRIALS} completed trials, has {len(trials)}."
        return OpEffects([OpEffect(op, None, None, None, None, int(c)) for op, c in zip(ops, counts)],
                         len(trials), float(confidence), note=note)

    y = np.array([float(t.reward) for t in trials])
    active = np.flatnonzero(counts > 0)
    x = np.column_stack([uses[:, active], _covariates(trials)])
    coef, alpha = _ridge_cv(x, y)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(num_bootstrap):
        pick = rng.integers(0, len(y), len(y))
        draws.append(_ridge(x[pick], y[pick], alpha)[0][: len(active)])
    # Simultaneous intervals: the estimate +- z bootstrap standard deviations, z Bonferroni-corrected
    # over the ops whose labels are read. Percentile intervals of the shrunk coefficient put the
    # estimate at their edge, and 90 % per op over ~30 ops labels ~3 null ops "helps"/"hurts".
    from scipy import stats

    family = max(int((counts[active] >= MIN_OP_TRIALS).sum()), 1)
    z = float(stats.norm.ppf(1.0 - (1.0 - float(confidence)) / (2.0 * family)))
    # the larger of two standard errors: the bootstrap's alone understates it when the trials are
    # about as many as the ops (20 trials, 31 ops: null ops' z-scores spread 1.45 instead of 1);
    # the ridge sandwich with the leave-one-out noise spreads them 0.98 (benchmarks/calibration.py)
    spread = np.maximum(np.array(draws).std(axis=0, ddof=1), _sandwich_error(x, y, alpha)[: len(active)])
    lows, highs = coef[: len(active)] - z * spread, coef[: len(active)] + z * spread
    fitted = y.mean() + (x - x.mean(axis=0)) @ coef
    noise = float(np.sqrt(np.sum((y - fitted) ** 2) / max(len(y) - 1, 1)))

    out = []
    for k, op in enumerate(ops):
        where = np.flatnonzero(active == k)
        if not where.size:
            out.append(OpEffect(op, None, None, None, None, 0))
            continue
        a = int(where[0])
        beta = float(coef[a])
        curve = _magnitude_curve(x, y, a, uses[:, k], magnitudes[:, k], alpha, noise, low_m, high_m)
        out.append(OpEffect(op, beta, float(lows[a]), float(highs[a]), _helps_range(curve), int(counts[k]), curve))
    out.sort(key=lambda e: (e.effect is None, e.trials < MIN_OP_TRIALS, -(e.effect or 0.0)))
    return OpEffects(out, len(trials), float(confidence))


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Ridge coefficients (intercept unpenalised, columns centred) and the intercept."""
    mean_x, mean_y = x.mean(axis=0), y.mean()
    xc = x - mean_x
    coef = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - mean_y))
    return coef, float(mean_y - mean_x @ coef)


def _sandwich_error(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Standard errors of the ridge coefficients: ``s2 A X'X A`` with ``A = (X'X + alpha I)^-1`` (columns
    centred) and ``s2`` the leave-one-out mean squared error (the in-sample one is shrunk by the fit)."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    inverse = np.linalg.inv(xc.T @ xc + alpha * np.eye(x.shape[1]))
    hat = xc @ inverse @ xc.T
    leverage = np.diag(hat) + 1.0 / len(y)
    noise = float(np.mean(((yc - hat @ yc) / np.maximum(1.0 - leverage, 1e-9)) ** 2))
    return np.sqrt(np.maximum(np.diag(noise * inverse @ (xc.T @ xc) @ inverse), 0.0))


def _ridge_cv(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Ridge with the penalty of least leave-one-out error (exact, through the hat matrix)."""
    xc, yc = x - x.mean(axis=0), y - y.mean()
    n = len(y)
    best = (math.inf, _ALPHAS[0])
    for alpha in _ALPHAS:
        hat = xc @ np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T)
        leverage = np.diag(hat) + 1.0 / n  # the intercept's share
        residual = (yc - hat @ yc) / np.maximum(1.0 - leverage, 1e-9)
        error = float(np.mean(residual**2))
        if error < best[0] - 1e-15:
            best = (error, alpha)
    return _ridge(x, y, best[1])[0], float(best[1])


def _magnitude_curve(x: np.ndarray, y: np.ndarray, column: int, u: np.ndarray, m: np.ndarray, alpha: float,
                     noise: float, low: float, high: float):
    """The op's effect per use over a grid of magnitudes: ``column`` of ``x`` split over the
    `KNOTS` (linear interpolation in the trial's magnitude ``m``) and refitted. Returns
    ``(grid, effect, standard error, support)``, or None when the magnitude is fixed."""
    if high - low <= 1e-9:
        return None
    knots = low + (high - low) * np.asarray(KNOTS)
    basis = lambda values: np.column_stack([np.interp(values, knots, np.eye(len(knots))[b])  # noqa: E731
                                            for b in range(len(knots))])
    used = u > 0
    split = np.zeros((len(y), len(knots)))
    split[used] = u[used, None] * basis(m[used])
    expanded = np.column_stack([np.delete(x, column, axis=1), split])
    coef, _ = _ridge(expanded, y, alpha)
    xc = expanded - expanded.mean(axis=0)
    inverse = np.linalg.inv(xc.T @ xc + alpha * np.eye(xc.shape[1]))
    covariance = noise**2 * inverse @ (xc.T @ xc) @ inverse
    grid = np.linspace(low, high, 41)
    at = basis(grid)
    k = slice(expanded.shape[1] - len(knots), None)
    effect = at @ coef[k]
    error = np.sqrt(np.einsum("gi,ij,gj->g", at, covariance[k, k], at))
    spacing = (high - low) / (len(knots) - 1)
    support = np.clip(1.0 - np.abs(grid[:, None] - m[None, used]) / spacing, 0.0, None).sum(axis=1)
    return grid, effect, error, support


def _helps_range(curve) -> tuple[float, float] | None:
    """The longest run of supported grid magnitudes whose local effect clears 0 by ``HELPS_Z`` errors."""
    if curve is None:
        return None
    grid, local, error, support = curve
    good = (local > HELPS_Z * error) & (support >= MIN_SUPPORT)
    best, start = None, None
    for i, flag in enumerate(list(good) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
            start = None
    if best is None:
        return None
    return float(grid[best[0]]), float(grid[best[1] - 1])
