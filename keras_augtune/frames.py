"""Search results as a pandas DataFrame (`SearchResults.to_frame()`; pandas is the optional ``pandas`` extra).

One row per trial, in trial order, indexed by the trial id, so that the usual pandas habits
work on a search (``frame.sort_values("gain")``, ``frame[frame.status == "COMPLETED"]``,
``frame.to_csv(...)``). pandas is imported only here, on demand: the package does not need it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas

    from keras_augtune.results import SearchResults

#: the one line shown when pandas is missing
PANDAS_MISSING = "SearchResults.to_frame() needs pandas: pip install 'keras-augtune[pandas]' (or pip install pandas)"
#: the columns, in order (then one ``hp/<name>`` column per architecture hyperparameter)
COLUMNS = ["number", "status", "rank", "policy", "reward", "score", "val_accuracy", "gain", "gain_low", "gain_high",
           "executions", "confirmed_rank", "is_baseline", "is_noop", "budget", "message"]


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def results_frame(results: "SearchResults") -> "pandas.DataFrame":
    """The trials of ``results`` as a DataFrame: ``rank`` is the position in `SearchResults.best()`
    (1 = the best; NaN for trials not ranked), ``policy`` the policy in words, ``gain_low`` /
    ``gain_high`` the gain's 95 % interval (NaN without two paired executions)."""
    try:
        import pandas
    except ImportError:
        raise ImportError(PANDAS_MISSING) from None
    ranks = {t.trial_id: i for i, t in enumerate(results.best(), start=1)}
    from keras_augtune.results import describe_policy

    rows = []
    for t in results.trials:
        low, high = t.gain_interval if t.gain_interval is not None else (None, None)
        row = {"trial_id": t.trial_id, "number": t.number, "status": t.status, "rank": _number(ranks.get(t.trial_id)),
               "policy": describe_policy(t.policy) if t.policy is not None else None,
               "reward": _number(t.reward), "score": _number(t.score), "val_accuracy": _number(t.val_accuracy),
               "gain": _number(t.gain), "gain_low": _number(low), "gain_high": _number(high),
               "executions": _number(t.executions), "confirmed_rank": _number(t.confirmed_rank),
               "is_baseline": t.is_baseline, "is_noop": t.is_noop, "budget": _number(t.budget), "message": t.message}
        row.update({f"hp/{name}": value for name, value in t.hyperparameters.items()})
        rows.append(row)
    frame = pandas.DataFrame(rows, columns=["trial_id", *COLUMNS]) if not rows else pandas.DataFrame(rows)
    return frame.set_index("trial_id")
