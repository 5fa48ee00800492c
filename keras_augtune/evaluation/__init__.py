"""Ways to score an augmentation policy: the training reward and density matching."""
