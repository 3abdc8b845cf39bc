"""gradlint: find the causes of vanishing and exploding gradients in PyTorch model code."""

__version__ = "0.1.0"

#: the name pip installs gradlint by (``gradlint`` on PyPI is another program)
DISTRIBUTION = "torch-gradlint"


def install_hint(extra: str) -> str:
    """``pip install 'torch-gradlint[EXTRA]'``: the one spelling every hint uses."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"
