"""Bayesian optimisation for Keras Tuner with a random-forest surrogate (``RandomForestOracle``).

One concept per module, composed by the :class:`RandomForestOracle` facade:

* :mod:`~keras_augtune.oracle.encoding` — hyperparameters as unit samples, codes and features;
* :mod:`~keras_augtune.oracle.training_data` — the encoded trials (observed, failed, running);
* :mod:`~keras_augtune.oracle.forest` — the surrogate: a forest with a mean and a variance;
* :mod:`~keras_augtune.oracle.acquisition` — ``EI``, ``PI``, ``LCB``;
* :mod:`~keras_augtune.oracle.candidates` — random samples, mutations of the best, refinement;
* :mod:`~keras_augtune.oracle.random_forest` — the Keras Tuner oracle itself;
* :mod:`~keras_augtune.oracle.hyperband` — the multi-fidelity variant: Hyperband's brackets,
  new trials proposed by the forest (``RandomForestHyperbandOracle``).
"""

from keras_augtune.oracle.acquisition import ACQUISITIONS, EI, LCB, PI, Acquisition
from keras_augtune.oracle.hyperband import RandomForestHyperbandOracle
from keras_augtune.oracle.random_forest import RandomForestOracle

__all__ = ["RandomForestOracle", "RandomForestHyperbandOracle", "ACQUISITIONS", "Acquisition", "EI", "PI", "LCB"]
