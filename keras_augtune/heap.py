"""Cheap garbage collection during a search: the objects alive when it starts are frozen (``gc.freeze``).

Keras Tuner cleans up before every trial with ``keras.backend.clear_session()`` and
``gc.collect()`` — two full collections, each scanning every object of the process
(~450,000 after importing TensorFlow and Keras): about 1 s per trial on 2 CPU cores, 10 % of
a 3-epoch trial on 1,000 CIFAR images (``benchmarks/trial_overhead.py``). Freezing the objects
that exist when the search begins (the libraries, the data, the tuner) moves them out of the
collector's view, so each collection only scans what the trials created: the same garbage is
freed at the same moments, for ~1/10 of the time. ``settle()``, when a trial begins (the
previous trial's objects are garbage by then), collects and freezes what survived the trials
so far as well, so the scans stay small over a long search. ``thaw()`` hands the frozen objects back to the collector when the search ends, so
nothing the search leaves behind is kept.

Freezing only hides objects from the *cycle* collector: an object whose last reference goes
is freed at once, frozen or not. What freezing can delay (to the end of the search) is a
reference cycle that was alive at a freeze and became garbage later.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["freeze", "settle", "thaw"]

_lock = threading.Lock()
_depth = 0


def freeze() -> None:
    """Collect once, then freeze every object alive now (nested calls count: only the first freezes)."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            gc.collect()
            gc.freeze()


def settle() -> None:
    """During a search (between ``freeze()`` and ``thaw()``): collect, then freeze what
    survived too. Called when a trial begins, once the previous trial's objects are garbage, so
    the collections during the trial scan only the objects made since: the previous trial's
    garbage is freed as before, and what outlives a trial (Keras Tuner's trial records; what
    TensorFlow keeps of every trained model, see ``docs/benchmarks.md``) is not scanned again at
    every later trial. Outside a search it does nothing."""
    with _lock:
        if _depth > 0:
            gc.collect()
            gc.freeze()


def thaw() -> None:
    """Undo one ``freeze()``; the last one unfreezes the objects (later collections see them again)."""
    global _depth
    with _lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth == 0:
            gc.unfreeze()
