"""Bayesian optimisation for Keras Tuner with a random-forest surrogate (``RandomForestOracle``).

One concept per module, composed by the ``RandomForestOracle`` facade:

* ``encoding`` — hyperparameters as unit samples, codes and features;
* ``training_data`` — the encoded trials (observed, failed, running);
* ``forest`` — the surrogate: a forest with a mean and a variance;
* ``acquisition`` — ``EI``, ``PI``, ``LCB``;
* ``candidates`` — random samples, mutations of the best, refinement;
* ``random_forest`` — the Keras Tuner oracle itself;
* ``hyperband`` — the multi-fidelity variant: Hyperband's brackets,
  new trials proposed by the forest (``RandomForestHyperbandOracle``).
"""

from keras_augtune.oracle.acquisition import ACQUISITIONS, EI, LCB, PI, Acquisition
from keras_augtune.oracle.hyperband import RandomForestHyperbandOracle
from keras_augtune.oracle.random_forest import RandomForestOracle

__all__ = ["RandomForestOracle", "RandomForestHyperbandOracle", "ACQUISITIONS", "Acquisition", "EI", "PI", "LCB"]
