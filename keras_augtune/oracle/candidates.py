"""The candidate generator: points worth scoring with the acquisition function.

One proposal scores ``num_candidates`` points: half uniform random samples of the
space, half mutations of the best completed trials; then the most promising of
those are mutated once more (refinement). Candidates equal to a tried point are
dropped. Everything is drawn from the ``rng`` it is given, in a fixed order, so a
proposal is reproducible from ``(seed, trial number)``.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from keras_augtune.oracle.encoding import SpaceEncoder
from keras_augtune.oracle.training_data import Rows

__all__ = ["CandidatePool", "CandidateGenerator", "LocalSearch", "MAXIMISERS"]

#: Acquisition maximisers ``RandomForestOracle(maximiser=...)`` understands.
MAXIMISERS = ("mutation", "local_search")


@dataclasses.dataclass(frozen=True)
class CandidatePool:
    """Scored candidates: unit rows, their encoded rows and their acquisition scores."""

    units: np.ndarray
    rows: Rows
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def best_first(self) -> np.ndarray:
        """Indices from the highest score down (ties keep generation order)."""
        return np.argsort(-self.scores, kind="stable")

    @staticmethod
    def concat(pools: list["CandidatePool"]) -> "CandidatePool":
        return CandidatePool(
            np.vstack([p.units for p in pools]),
            Rows.stack([p.rows for p in pools]),
            np.concatenate([p.scores for p in pools]),
        )


class CandidateGenerator:
    """Random samples + mutations of the best trials + one refinement round, scored by ``score_fn``."""

    def __init__(self, encoder: SpaceEncoder, num_candidates: int = 1024, num_parents: int = 5):
        self.encoder = encoder
        self.num_candidates = num_candidates
        self.num_parents = num_parents

    def generate(
        self,
        parents: Rows,
        score_fn: Callable[[Rows], np.ndarray],
        tried: set,
        rng: np.random.Generator,
    ) -> CandidatePool | None:
        """Scored, de-duplicated candidates; None if every generated point was already tried.

        ``parents`` are the best completed trials (best first), ``score_fn`` maps encoded
        rows to acquisition scores (higher is better), ``tried`` holds the encoder keys of
        points never to return.
        """
        encoder = self.encoder
        parent_units = encoder.units_of(parents.codes, parents.active, rng)
        _, parent_active = encoder.decode(parent_units)
        num_random = self.num_candidates // 2
        units = np.vstack([
            rng.random((num_random, encoder.dims)),
            self.mutate(parent_units, parent_active, self.num_candidates - num_random, rng),
        ])
        seen = set(tried)
        first = self._score_new(units, score_fn, seen)
        if first is None:
            return None
        # Refinement: mutate the most promising candidates once more.
        top = first.best_first()[: self.num_parents]
        refined = self.mutate(first.units[top], first.rows.active[top], self.num_candidates // 2, rng)
        second = self._score_new(refined, score_fn, seen)
        return first if second is None else CandidatePool.concat([first, second])

    def _score_new(self, units: np.ndarray, score_fn, seen: set) -> CandidatePool | None:
        """Score the unit rows whose points are not in ``seen`` (and add them to it)."""
        pool, _ = self._score_new_indexed(units, score_fn, seen)
        return pool

    def _score_new_indexed(self, units: np.ndarray, score_fn, seen: set) -> tuple[CandidatePool | None, list]:
        """``_score_new``, also returning which input rows were kept."""
        codes, active = self.encoder.decode(units)
        keep = []
        for i, key in enumerate(self.encoder.keys(codes, active)):
            if key not in seen:
                seen.add(key)
                keep.append(i)
        if not keep:
            return None, keep
        rows = Rows(codes[keep], active[keep])
        return CandidatePool(units[keep], rows, score_fn(rows)), keep

    def mutate(
        self,
        units: np.ndarray,
        active: np.ndarray,
        num_children: int,
        rng: np.random.Generator,
        parents: np.ndarray | None = None,
        single_change: bool = False,
    ) -> np.ndarray:
        """Children of unit rows: 1-3 active hyperparameters changed each (exactly 1 with ``single_change``).

        ``parents`` (row indices, one per child) default to uniform draws. A discrete
        hyperparameter moves to a different value, uniformly; a numeric one takes a
        Gaussian step (sd 0.1 in unit space, 70 %) or a fresh uniform draw (30 %).
        """
        if parents is None:
            parents = rng.integers(0, units.shape[0], size=num_children)
        children = units[parents].copy()
        parent_active = active[parents]
        if single_change:
            num_changes = np.ones(num_children, dtype=int)
        else:
            num_changes = 1 + rng.binomial(2, 0.3, size=num_children)
        order = np.argsort(np.where(parent_active, rng.random(children.shape), 2.0), axis=1)
        ranks = np.argsort(order, axis=1)
        change = (ranks < num_changes[:, None]) & parent_active
        num_values = self.encoder.num_values[None, :].repeat(num_children, axis=0)
        discrete = change & (num_values > 1)
        if discrete.any():
            n = num_values[discrete]
            current = np.minimum(np.floor(children[discrete] * n), n - 1)
            offset = 1 + np.floor(rng.random(n.shape) * (n - 1))
            shifted = (current + offset) % n
            children[discrete] = (shifted + 0.5) / n
        numeric = change & (num_values == 0)
        if numeric.any():
            size = int(numeric.sum())
            local = np.clip(children[numeric] + rng.normal(0.0, 0.1, size=size), 0.0, 1.0)
            children[numeric] = np.where(rng.random(size) < 0.7, local, rng.random(size))
        return children


class LocalSearch(CandidateGenerator):
    """SMAC-style acquisition maximiser: sorted random samples plus local search from the best points.

    ``num_candidates / 2`` random samples are scored; hill climbs start from the
    ``num_parents`` best completed trials and the ``num_parents`` best random samples.
    Each step scores ``neighbours`` one-change neighbours of every climber and moves it
    to its best neighbour when that is at least as good (a forest's acquisition is
    piecewise constant: climbers walk its plateaus); a climber stops when every
    neighbour is worse, and the search after ``max_steps`` steps. Every scored point
    is a candidate.
    """

    def __init__(self, encoder, num_candidates=1024, num_parents=5, neighbours=20, max_steps=10):
        super().__init__(encoder, num_candidates, num_parents)
        self.neighbours = neighbours
        self.max_steps = max_steps

    def generate(self, parents, score_fn, tried, rng):
        encoder = self.encoder
        seen = set(tried)
        pools = []
        random_pool = self._score_new(rng.random((self.num_candidates // 2, encoder.dims)), score_fn, seen)
        parent_units = encoder.units_of(parents.codes, parents.active, rng)
        parent_codes, parent_active = encoder.decode(parent_units)
        starts_units, starts_active = [parent_units], [parent_active]
        starts_scores = [score_fn(Rows(parent_codes, parent_active))]
        if random_pool is not None:
            pools.append(random_pool)
            top = random_pool.best_first()[: self.num_parents]
            starts_units.append(random_pool.units[top])
            starts_active.append(random_pool.rows.active[top])
            starts_scores.append(random_pool.scores[top])
        current = np.vstack(starts_units)
        current_active = np.vstack(starts_active)
        current_scores = np.concatenate(starts_scores)
        climbing = np.ones(len(current), dtype=bool)
        for _ in range(self.max_steps):
            climbers = np.flatnonzero(climbing)
            if not climbers.size:
                break
            owner = np.repeat(climbers, self.neighbours)
            children = self.mutate(current, current_active, owner.size, rng, parents=owner, single_change=True)
            pool, keep = self._score_new_indexed(children, score_fn, seen)
            if pool is None:
                break
            pools.append(pool)
            owner = owner[keep]
            moved = np.zeros(len(current), dtype=bool)
            for climber in climbers:
                mine = np.flatnonzero(owner == climber)
                if mine.size:
                    best = mine[np.argmax(pool.scores[mine])]
                    if pool.scores[best] >= current_scores[climber]:  # ties: walk the forest's plateaus
                        current[climber] = pool.units[best]
                        current_active[climber] = pool.rows.active[best]
                        current_scores[climber] = pool.scores[best]
                        moved[climber] = True
            climbing &= moved
        if not pools:
            return None
        return CandidatePool.concat(pools)
