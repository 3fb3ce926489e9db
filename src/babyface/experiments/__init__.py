"""What orchestrates training, evaluation and ensembling together: cross-validation and multi-seed runs."""
