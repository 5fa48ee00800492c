"""keras_augtune.heap: the objects alive when a search starts are frozen during it, and only then."""

import gc

from keras_augtune import heap


def test_freeze_and_thaw_nest():
    # A frozen object whose last reference goes is freed at once, so the frozen count may *fall*
    # while other threads of the test process (a finished search's gRPC or tqdm threads) run:
    # "nothing more is frozen" is checked as "not more", and a failure never leaves the heap frozen
    # for the tests after this one.
    assert gc.get_freeze_count() == 0
    try:
        heap.freeze()
        frozen = gc.get_freeze_count()
        assert frozen > 0
        garbage = []
        garbage.append(garbage)  # a reference cycle made after the freeze is still collected
        del garbage
        assert gc.collect() >= 1
        extra = [[] for _ in range(1000)]  # alive at the nested freeze: frozen if it froze again
        heap.freeze()  # nested (a search inside a search): nothing more is frozen
        assert 0 < gc.get_freeze_count() <= frozen
        heap.thaw()
        assert 0 < gc.get_freeze_count() <= frozen
        heap.thaw()
        assert gc.get_freeze_count() == 0
        heap.thaw()  # unmatched: nothing happens
        assert gc.get_freeze_count() == 0
        del extra
    finally:
        for _ in range(3):
            heap.thaw()
