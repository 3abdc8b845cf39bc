"""gradlint: find the causes of vanishing and exploding gradients in PyTorch model code."""

__version__ = "0.1.0"
