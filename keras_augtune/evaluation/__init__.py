"""Evaluation: how a trained child model is scored (the reward of a trial)."""
