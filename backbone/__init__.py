"""Network architectures used by the datasets."""
