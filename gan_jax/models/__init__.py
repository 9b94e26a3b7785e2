"""One module per family: G and D, nothing else."""
