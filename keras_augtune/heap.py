"""Cheap garbage collection during a search: the objects alive when it starts are frozen (``gc.freeze``).

Keras Tuner cleans up before every trial with ``keras.backend.clear_session()`` and
``gc.collect()`` — two full collections, each scanning every object of the process
(~450,000 after importing TensorFlow and Keras): about 1 s per trial on 2 CPU cores, 10 % of
a 3-epoch trial on 1,000 CIFAR images (``benchmarks/trial_overhead.py``). Freezing the objects
that exist when the search begins (the libraries, the data, the tuner) moves them out of the
collector's view, so each collection only scans what the trials created: the same garbage is
freed at the same moments, for ~1/10 of the time. :func:`thaw` hands the frozen objects back
to the collector when the search ends, so nothing the search leaves behind is kept.
"""

from __future__ import annotations

import gc
import threading

__all__ = ["freeze", "thaw"]

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


def thaw() -> None:
    """Undo one :func:`freeze`; the last one unfreezes the objects (later collections see them again)."""
    global _depth
    with _lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth == 0:
            gc.unfreeze()
