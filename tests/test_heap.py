"""keras_augtune.heap: the objects alive when a search starts are frozen during it, and only then."""

import gc

from keras_augtune import heap


def test_freeze_and_thaw_nest():
    assert gc.get_freeze_count() == 0
    heap.freeze()
    frozen = gc.get_freeze_count()
    assert frozen > 0
    garbage = []
    garbage.append(garbage)  # a reference cycle made after the freeze is still collected
    del garbage
    assert gc.collect() >= 1
    heap.freeze()  # nested (a search inside a search): nothing more is frozen
    assert gc.get_freeze_count() == frozen
    heap.thaw()
    assert gc.get_freeze_count() == frozen
    heap.thaw()
    assert gc.get_freeze_count() == 0
    heap.thaw()  # unmatched: nothing happens
    assert gc.get_freeze_count() == 0
