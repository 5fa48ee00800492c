"""The statistics of a verdict: paired gains, intervals corrected for the pick, and the decision rule.

Execution ``e`` of every configuration trains under one seed, so a configuration's reward minus
another's on the same ``e`` removes the luck both trainings shared. The rewards of the raced
configurations on their shared executions form a two-way table (configuration x execution);
its additive fit ``reward = configuration + execution + residual`` pools the residual variance
of all the configurations, with ``(C - 1)(n - 1)`` degrees of freedom instead of the ``n - 1``
of one pair, when their noise is comparable: Levene's test (Brown-Forsythe, median-centred) on
the residuals of each configuration, ``p >= NOISE_P``. When it is not, each configuration gets
the Student-t interval of its own paired differences (valid whatever the noises are).

The pick is corrected for. Every verdict compares several configurations against one
reference (no augmentation, or the best recipe) and names the best, so each family of
intervals is simultaneous: Dunnett's many-to-one critical value (the multivariate t with the
contrasts' correlation 0.5, from ``scipy.stats.multivariate_t``) for the pooled fit, and
Bonferroni's for the per-pair fallback, whose contrasts have no common variance. Dunnett over
Holm/Bonferroni because its intervals are exact for the pooled model and narrower (2.40 against
2.45 for two contrasts on 18 degrees of freedom), and unlike Holm it gives intervals, not only
a yes/no.

The decision names one of three (`decide`): a searched policy when it beats no augmentation
*and* the best recipe beyond the noise, else the best recipe when it beats no augmentation,
else no augmentation. Under the complete null (nothing helps) a "better" verdict needs some
contrast against no augmentation to clear its simultaneous bound, so it happens with
probability at most ``(1 - confidence) / 2`` (2.5 %).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Mapping, Sequence

import numpy as np

__all__ = ["CONFIDENCE", "KINDS", "NOISE_P", "mean_interval", "PairedGain", "paired_gain", "Comparison",
           "Decision", "Row", "contrasts", "decide", "table", "critical_value", "noise_comparable"]

#: The confidence of every interval the package reports.
CONFIDENCE = 0.95
#: The kinds of raced configuration.
KINDS = ("searched", "recipe", "baseline")
#: Levene's p-value below which the configurations' noise is not pooled.
NOISE_P = 0.05


def mean_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float | None]:
    """The mean of ``values`` and the half-width of its Student-t ``confidence`` interval
    (``None`` with fewer than two values)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_interval needs at least one value.")
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    from scipy import stats

    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2.0, len(values) - 1)) * sd / math.sqrt(len(values))
    return mean, half


@dataclasses.dataclass(frozen=True)
class PairedGain:
    """The mean paired difference ``gain`` over ``pairs`` executions, and its interval ``(low, high)``
    (``None`` with fewer than two pairs)."""

    gain: float
    interval: tuple[float, float] | None
    pairs: int


def paired_gain(rewards: Sequence[float], baseline: Sequence[float], confidence: float = CONFIDENCE) -> PairedGain | None:
    """The paired gain of ``rewards`` over ``baseline`` (both indexed by execution, from 0) on the
    executions both have; ``None`` when they share none."""
    pairs = min(len(rewards), len(baseline))
    if pairs == 0:
        return None
    differences = [float(rewards[e]) - float(baseline[e]) for e in range(pairs)]
    gain, half = mean_interval(differences, confidence)
    return PairedGain(gain, None if half is None else (gain - half, gain + half), pairs)


@functools.lru_cache(maxsize=256)
def critical_value(contrasts: int, df: int, confidence: float = CONFIDENCE, pooled: bool = True) -> float:
    """The two-sided simultaneous critical value for ``contrasts`` comparisons against one reference
    on ``df`` degrees of freedom: Dunnett's (equicorrelated multivariate t, correlation 0.5) when
    ``pooled``, Bonferroni's otherwise. One contrast: Student's t."""
    from scipy import optimize, stats

    if contrasts == 1 or not pooled:
        return float(stats.t.ppf(1.0 - (1.0 - confidence) / (2.0 * contrasts), df))
    shape = np.full((contrasts, contrasts), 0.5) + 0.5 * np.eye(contrasts)

    def coverage(q):
        # a fixed seed: the quasi-Monte Carlo integral is then a deterministic function of q
        law = stats.multivariate_t(shape=shape, df=df, seed=0)
        return law.cdf(np.full(contrasts, q), lower_limit=np.full(contrasts, -q)) - confidence

    return float(optimize.brentq(coverage, 0.5, 50.0, xtol=1e-5))


@dataclasses.dataclass(frozen=True)
class Comparison:
    """``name``'s mean paired gain over ``reference`` on ``executions`` shared executions, and its
    ``interval`` (simultaneous over the family it was computed in; ``None`` below two executions).
    ``pooled``: the interval uses the variance pooled over the family's two-way table."""

    name: str
    reference: str
    gain: float
    interval: tuple[float, float] | None
    executions: int
    pooled: bool

    @property
    def beats(self) -> bool:
        """The whole interval lies above 0: ``name`` beat ``reference`` beyond the noise."""
        return self.interval is not None and self.interval[0] > 0.0


def _shared(rewards: Mapping[str, Mapping[int, float]], names: Sequence[str],
            executions: Sequence[int] | None) -> list[int]:
    common = set(rewards[names[0]])
    for name in names[1:]:
        common &= set(rewards[name])
    if executions is not None:
        common &= set(executions)
    return sorted(common)


def contrasts(rewards: Mapping[str, Mapping[int, float]], reference: str, others: Sequence[str],
              executions: Sequence[int] | None = None, confidence: float = CONFIDENCE,
              family: int | None = None) -> list[Comparison]:
    """Each of ``others`` against ``reference``, as one family of simultaneous intervals.

    On the executions all of them share (within ``executions`` when given): the pooled two-way
    fit with Dunnett's critical value when the noise is comparable, else each pair's own
    t-interval with Bonferroni's. ``family``: the number of comparisons the correction covers
    when it is larger than ``others`` (e.g. a table computed one row at a time). Returns one
    [`Comparison`][keras_augtune.evaluation.verdict.Comparison] per name of ``others``, in order."""
    if not others:
        return []
    names = [reference, *others]
    shared = _shared(rewards, names, executions)
    n, m = len(shared), max(len(others), family or 0)
    if n == 0:
        raise ValueError(f"{reference!r} and {', '.join(map(repr, others))} share no execution to compare on.")
    table = np.array([[float(rewards[name][e]) for e in shared] for name in names])
    gains = table[1:].mean(axis=1) - table[0].mean()
    if n < 2:
        return [Comparison(name, reference, float(g), None, n, False) for name, g in zip(others, gains)]
    pooled = noise_comparable(table) and m == len(others)
    if pooled:
        residuals = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
        df = (len(names) - 1) * (n - 1)
        variance = float((residuals ** 2).sum()) / df
        halves = [critical_value(m, df, confidence, True) * math.sqrt(2.0 * variance / n)] * m
    else:
        q = critical_value(m, n - 1, confidence, False)
        halves = [q * float(np.std(row - table[0], ddof=1)) / math.sqrt(n) for row in table[1:]]
    return [Comparison(name, reference, float(g), (float(g - h), float(g + h)), n, pooled)
            for name, g, h in zip(others, gains, halves)]


def noise_comparable(table: np.ndarray) -> bool:
    """Whether the rows of a (configuration x execution) reward table have comparable noise:
    Levene's median-centred test on each row's two-way residuals has ``p >= NOISE_P``. Two rows
    always pool (their residuals are each other's negatives; pooling is then the paired t)."""
    if table.shape[0] < 3 or table.shape[1] < 3:
        return True
    from scipy import stats

    residuals = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
    if np.ptp(residuals) == 0.0:
        return True
    return bool(stats.levene(*residuals, center="median").pvalue >= NOISE_P)


@dataclasses.dataclass(frozen=True)
class Row:
    """One raced configuration in a results table: its ``kind``, ``executions`` measured, ``mean``
    reward over them, and its gains over no augmentation (``vs_none``) and over the best recipe
    (``vs_recipe``), each on the executions it shares with that reference (``None`` when it
    shares none, or is that reference)."""

    name: str
    kind: str
    executions: int
    mean: float
    vs_none: Comparison | None
    vs_recipe: Comparison | None


def table(rewards: Mapping[str, Mapping[int, float]], kinds: Mapping[str, str],
          confidence: float = CONFIDENCE) -> list[Row]:
    """Every configuration's row, best mean first, for tables. Each row compares on the executions
    it shares with the reference (a candidate the race dropped early shares fewer), with per-pair
    intervals Bonferroni-corrected over the rows; the verdict itself is [`decide`][keras_augtune.evaluation.verdict.decide]'s."""
    baseline, searched, recipes = _check_kinds(rewards, kinds)
    names = [n for n in kinds if rewards[n]]
    mean = {n: float(np.mean(list(rewards[n].values()))) for n in names}
    recipe = max(recipes, key=lambda n: (len(rewards[n]), mean[n])) if recipes else None
    family = max(len(names) - 1, 1)

    def versus(name, reference):
        if reference is None or name == reference or not set(rewards[name]) & set(rewards[reference]):
            return None
        return contrasts(rewards, reference, [name], confidence=confidence, family=family)[0]

    return [Row(n, kinds[n], len(rewards[n]), mean[n], versus(n, baseline), versus(n, recipe))
            for n in sorted(names, key=lambda n: -mean[n])]


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to use, and by how much it beats the alternatives.

    ``kind`` is ``"searched"``, ``"recipe"`` or ``"baseline"`` (no augmentation) and ``name`` the
    configuration; ``gain_vs_none``/``interval_vs_none`` its gain over no augmentation,
    ``gain_vs_recipe``/``interval_vs_recipe`` its gain over the best recipe ``recipe`` (``None``
    when it is that recipe or no recipe raced); intervals simultaneous over the pick.
    ``comparisons``: every contrast computed; ``executions``: how many paired executions."""

    kind: str
    name: str
    gain_vs_none: float
    interval_vs_none: tuple[float, float] | None
    gain_vs_recipe: float | None
    interval_vs_recipe: tuple[float, float] | None
    baseline: str
    recipe: str | None
    executions: int
    text: str
    comparisons: tuple[Comparison, ...] = ()

    @property
    def better(self) -> bool:
        """Something beat no augmentation beyond the noise."""
        return self.kind != "baseline"


def _fmt(gain: float, interval: tuple[float, float] | None) -> str:
    return f"{gain:+.4f}" + (f" [{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else " (no interval)")


def _check_kinds(rewards, kinds) -> tuple[str, list[str], list[str]]:
    from keras_augtune.checks import check_choice

    for name, kind in kinds.items():
        check_choice(f"the kind of {name!r}", kind, KINDS)
    baselines = [name for name, kind in kinds.items() if kind == "baseline"]
    if len(baselines) != 1:
        raise ValueError(f"a verdict needs exactly one baseline (no augmentation), got {len(baselines)}.")
    missing = [name for name in kinds if name not in rewards]
    if missing:
        raise ValueError(f"no rewards for {', '.join(map(repr, missing))}.")
    return (baselines[0], [n for n, k in kinds.items() if k == "searched" and rewards[n]],
            [n for n, k in kinds.items() if k == "recipe" and rewards[n]])


def decide(rewards: Mapping[str, Mapping[int, float]], kinds: Mapping[str, str],
           executions: Sequence[int] | None = None, confidence: float = CONFIDENCE,
           label: str | None = None) -> Decision:
    """The verdict on ``rewards`` (name -> execution index -> reward) of configurations of
    ``kinds`` (name -> ``"searched"``, ``"recipe"`` or ``"baseline"``, exactly one baseline).

    Only the executions shared by the baseline and every other configuration that has all of
    them count (within ``executions`` when given: pass the executions that did not select the
    configurations, so that none is scored on the draw that picked it). Family A: every
    configuration against no augmentation; family B: every searched policy against the best
    recipe (by mean). A searched policy is named when it beats both, else the best recipe that
    beats no augmentation, else no augmentation; among several, the highest mean. ``label``: what the
    text calls the baseline (default ``"no augmentation"``; under a base recipe, the base alone)."""
    label = label or "no augmentation"
    baseline, searched, recipes = _check_kinds(rewards, kinds)
    pool = set(rewards[baseline]) if executions is None else set(rewards[baseline]) & set(executions)
    # configurations measured on every execution of the baseline's: the finalists
    finalists = [n for n in searched + recipes if pool <= set(rewards[n])]
    if len(pool) == 0:
        raise ValueError(f"the baseline {baseline!r} has no execution to decide on.")
    shared = sorted(pool)
    mean = {n: float(np.mean([rewards[n][e] for e in shared])) for n in [baseline, *finalists]}
    searched = [n for n in searched if n in finalists]
    recipes = sorted((n for n in recipes if n in finalists), key=lambda n: -mean[n])
    recipe = recipes[0] if recipes else None
    family_a = {c.name: c for c in contrasts(rewards, baseline, searched + recipes, shared, confidence)}
    family_b = {c.name: c for c in contrasts(rewards, recipe, searched, shared, confidence)} if recipe else {}
    n = len(shared)
    how = f"{confidence:.0%} intervals corrected for the pick, {n} paired execution{'s' if n != 1 else ''}"
    winners = [s for s in searched if family_a[s].beats and (recipe is None or family_b[s].beats)]
    if winners:
        name = max(winners, key=mean.get)
        a, b = family_a[name], family_b.get(name)
        text = (f"Use the searched policy {name!r}: {_fmt(a.gain, a.interval)} over {label}"
                + (f" and {_fmt(b.gain, b.interval)} over {recipe}" if b else "") + f" ({how}).")
        return Decision("searched", name, a.gain, a.interval, b.gain if b else None, b.interval if b else None,
                        baseline, recipe, n, text, tuple(family_a.values()) + tuple(family_b.values()))
    better = [r for r in recipes if family_a[r].beats]
    if better:
        name = max(better, key=mean.get)
        a = family_a[name]
        best_searched = max(searched, key=mean.get) if searched else None
        versus = (f"; no searched policy beat it beyond the noise (best {best_searched!r}: "
                  f"{_fmt(family_b[best_searched].gain, family_b[best_searched].interval)})"
                  if best_searched and name == recipe else "")
        vs_recipe = None if name == recipe else family_a[name].gain - family_a[recipe].gain
        text = f"Use {name}: {_fmt(a.gain, a.interval)} over {label}{versus} ({how})."
        return Decision("recipe", name, a.gain, a.interval, vs_recipe, None, baseline, recipe, n, text,
                        tuple(family_a.values()) + tuple(family_b.values()))
    vs_recipe = family_a[recipe] if recipe else None
    best = max(searched + recipes, key=mean.get) if searched + recipes else None
    text = (f"Use {label}: nothing beat it beyond the noise"
            + (f" (best {best!r}: {_fmt(family_a[best].gain, family_a[best].interval)})" if best else "")
            + f" ({how}).")
    return Decision("baseline", baseline, 0.0, None,
                    -vs_recipe.gain if vs_recipe else None,
                    (-vs_recipe.interval[1], -vs_recipe.interval[0]) if vs_recipe and vs_recipe.interval else None,
                    baseline, recipe, n, text, tuple(family_a.values()) + tuple(family_b.values()))
