"""One test per assumption keras_augtune.compat makes about Keras Tuner's private internals:
an upgrade that breaks one fails here, by name."""

import os

import keras
import keras_tuner
import numpy as np
import pytest

from keras_augtune import compat


def _build(hp):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(hp.Int("units", 1, 4), name="dense")])
    model.compile("sgd", "mse")
    return model


def _oracle(tmp_path, max_trials=5):
    oracle = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("score", "max"),
                                                    max_trials=max_trials, seed=1)
    oracle._set_project_dir(str(tmp_path), "p")
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 4)
    oracle.update_space(hp)
    return oracle


@pytest.mark.parametrize("tuner_id,chief,worker", [(None, False, False), ("chief", True, False), ("tuner0", False, True)])
def test_chief_and_worker_are_read_from_the_environment(monkeypatch, tuner_id, chief, worker):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)
    if tuner_id is not None:
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
        monkeypatch.setenv("KERASTUNER_TUNER_ID", tuner_id)
    assert (compat.is_chief(), compat.is_worker()) == (chief, worker)


def test_explore_space_runs_keras_tuners_own_exploration_despite_an_override(tmp_path):
    class LateTuner(keras_tuner.RandomSearch):
        def _populate_initial_space(self):  # the hook AugmentTuner overrides
            pass

    tuner = LateTuner(_build, objective="loss", max_trials=1, directory=str(tmp_path), project_name="p")
    assert "units" not in tuner.oracle.get_space()
    compat.explore_space(tuner)
    assert "units" in tuner.oracle.get_space()


def test_checkpoint_path_is_where_load_model_reads(tmp_path):
    tuner = keras_tuner.RandomSearch(_build, objective="loss", max_trials=1, directory=str(tmp_path), project_name="p")
    trial = tuner.oracle.create_trial("tuner0")
    model = tuner.hypermodel.build(trial.hyperparameters)
    model.set_weights([np.full_like(w, 0.5) for w in model.get_weights()])
    path = compat.checkpoint_path(tuner, trial.trial_id)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    model.save_weights(path)
    loaded = tuner.load_model(trial)
    assert all(np.all(w == 0.5) for w in loaded.get_weights())


def test_set_project_dir_lets_a_bare_oracle_reload_a_search(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    oracle.update_trial(trial.trial_id, {"score": 0.7})
    trial.status = "COMPLETED"
    oracle.end_trial(trial)
    oracle.save()
    fresh = keras_tuner.oracles.RandomSearchOracle(objective=keras_tuner.Objective("score", "max"), max_trials=5)
    compat.set_project_dir(fresh, str(tmp_path), "p")
    fresh.reload()
    assert list(fresh.trials) == [trial.trial_id] and fresh.trials[trial.trial_id].score == 0.7


def test_retry_queue_is_handed_out_first_and_save_trial_writes_trial_json(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("lost")
    oracle.ongoing_trials.pop("lost")
    queue = compat.retry_queue(oracle)
    assert isinstance(queue, list)
    queue.append(trial.trial_id)
    assert oracle.create_trial("other").trial_id == trial.trial_id
    trial.message = "re-queued"
    compat.save_trial(oracle, trial)
    saved = os.path.join(str(tmp_path), "p", f"trial_{trial.trial_id}", "trial.json")
    assert keras_tuner.engine.trial.Trial.load(saved).message == "re-queued"


def test_protos_and_the_chiefs_servicer():
    protos = compat.protos()
    assert hasattr(protos.get_service(), "CreateTrialResponse")
    assert hasattr(protos.get_service_grpc(), "add_OracleServicer_to_server")
    servicer = compat.oracle_servicer_class()
    for method in ("CreateTrial", "GetTrial", "UpdateTrial", "EndTrial"):
        assert callable(getattr(servicer, method))


def test_grid_values_of_stepped_hyperparameters():
    from keras_tuner.engine import hyperparameters as hps

    assert compat.grid_values(hps.Float("x", 0.0, 1.0, step=0.25)) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert compat.grid_values(hps.Int("n", 1, 5, step=2)) == [1, 3, 5]
    assert compat.grid_size(hps.Float("x", 0.0, 1.0, step=0.25)) == 5 and compat.grid_size(hps.Int("n", 1, 5, step=2)) == 3


def test_is_duplicate_is_keras_tuners_own_check(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    values = dict(trial.hyperparameters.values)
    assert compat.is_duplicate(oracle, values)
    assert not compat.is_duplicate(oracle, {"units": 1 + values["units"] % 4})


def test_values_hash_is_the_hash_oracle_json_keeps(tmp_path):
    oracle = _oracle(tmp_path)
    trial = oracle.create_trial("tuner0")
    state = oracle.get_state()
    assert state["id_to_hash"][trial.trial_id] == compat.values_hash(trial.hyperparameters.values)
    assert state["tried_so_far"] == [compat.values_hash(dict(trial.hyperparameters.values))]


def _hyperband(tmp_path):
    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 4)
    oracle = keras_tuner.oracles.HyperbandOracle(objective=keras_tuner.Objective("score", "max"), max_epochs=9,
                                                 factor=3, hyperparameters=hp, seed=1)
    oracle._set_project_dir(str(tmp_path), "hb")
    return oracle


def test_start_brackets_sets_the_state_hyperband_init_sets(tmp_path):
    oracle = _hyperband(tmp_path)
    state = (oracle._current_iteration, oracle._current_bracket, [dict(b) for b in oracle._brackets])
    oracle._current_iteration, oracle._current_bracket, oracle._brackets = 7, 0, []
    compat.start_brackets(oracle)
    assert (oracle._current_iteration, oracle._current_bracket, [dict(b) for b in oracle._brackets]) == state


def test_hyperband_plan_is_successive_halving_up_to_max_epochs(tmp_path):
    plan = compat.hyperband_plan(_hyperband(tmp_path))
    assert len(plan) == 3 and plan[0] == {"trials": [9, 3, 1], "epochs": [1, 3, 9]}
    assert [bracket["epochs"][-1] for bracket in plan] == [9, 9, 9]


def test_hyperband_asks_random_values_for_a_bracket_s_new_trials(tmp_path):
    class Asking(keras_tuner.oracles.HyperbandOracle):  # the hook RandomForestHyperbandOracle overrides
        asked = 0

        def _random_values(self):
            Asking.asked += 1
            return {"units": 3}

    hp = keras_tuner.HyperParameters()
    hp.Int("units", 1, 4)
    oracle = Asking(objective=keras_tuner.Objective("score", "max"), max_epochs=9, factor=3, hyperparameters=hp)
    oracle._set_project_dir(str(tmp_path), "asking")
    trial = oracle.create_trial("tuner0")
    assert Asking.asked >= 1 and trial.hyperparameters.values["units"] == 3


def test_build_model_goes_through_the_build_hypermodel_hook(tmp_path):
    built = []

    class HookedTuner(keras_tuner.RandomSearch):
        def _build_hypermodel(self, hp):  # the hook AugmentTuner overrides (Hyperband's continued trials)
            built.append(hp.values.get("units"))
            return super()._build_hypermodel(hp)

    tuner = HookedTuner(_build, objective="loss", max_trials=1, directory=str(tmp_path), project_name="p")
    built.clear()
    trial = tuner.oracle.create_trial("tuner0")
    compat.build_model(tuner, trial.hyperparameters)
    assert built == [trial.hyperparameters.values["units"]]


def test_configure_tensorboard_gives_a_folder_per_trial_and_execution_with_hparams(tmp_path):
    tuner = keras_tuner.RandomSearch(_build, objective="loss", max_trials=1, directory=str(tmp_path), project_name="p")
    trial = tuner.oracle.create_trial("tuner0")
    callbacks = [keras.callbacks.TensorBoard(log_dir=str(tmp_path / "logs"))]
    folders = compat.configure_tensorboard(tuner, callbacks, trial, 1)
    assert folders == [os.path.join(str(tmp_path / "logs"), trial.trial_id, "execution1")]
    assert callbacks[0].log_dir == folders[0]
    assert len(callbacks) == 2 and "hparams" in type(callbacks[1]).__module__  # tensorboard's HParams callback


def test_project_dir_is_where_the_trial_files_are(tmp_path):
    oracle = _oracle(tmp_path)
    assert os.path.samefile(compat.project_dir(oracle), tmp_path / "p")
    trial = oracle.create_trial("tuner0")
    compat.save_trial(oracle, trial)
    assert os.path.isfile(os.path.join(compat.project_dir(oracle), f"trial_{trial.trial_id}", "trial.json"))


def test_a_synchronized_method_that_raises_leaves_the_lock_held_until_released(tmp_path):
    import threading

    oracle = _oracle(tmp_path)
    with pytest.raises(Exception):
        oracle.update_trial("no-such-trial", {"score": 1.0})  # raises inside @synchronized
    assert compat.release_lock_if_held(oracle) is True  # it was still held by this thread
    assert compat.release_lock_if_held(oracle) is False
    done = threading.Event()
    threading.Thread(target=lambda: (oracle.create_trial("tuner1"), done.set()), daemon=True).start()
    assert done.wait(10), "the oracle stayed locked"


def test_the_tuners_worker_timeout_default_is_the_distributed_default():
    import inspect

    from keras_augtune import distributed
    from keras_augtune.tuner import AugmentTuner

    default = inspect.signature(AugmentTuner.__init__).parameters["worker_timeout"].default
    assert default == distributed.WORKER_TIMEOUT
