"""Paired gains under their former name: the statistics of a verdict now live in
[`keras_augtune.evaluation.verdict`][keras_augtune.evaluation.verdict] (this module only re-exports its paired t-interval)."""

from keras_augtune.evaluation.verdict import CONFIDENCE, PairedGain, mean_interval, paired_gain

__all__ = ["PairedGain", "paired_gain", "mean_interval", "CONFIDENCE"]
