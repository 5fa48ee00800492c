"""Ways to score an augmentation policy: the training reward (and paired gains) and density matching."""
