"""gradlint: find the causes of vanishing and exploding gradients in PyTorch model code."""

__version__ = "0.1.0"

#: the name pip installs gradlint by (``gradlint`` on PyPI is another program)
DISTRIBUTION = "torch-gradlint"


def install_hint(extra: str) -> str:
    """``pip install 'torch-gradlint[EXTRA]'``: the one spelling every hint uses."""
    return f"pip install '{DISTRIBUTION}[{extra}]'"


#: the project's repository; its docs/ folder is the published reference
REPOSITORY = "https://github.com/gradlint/gradlint"


def docs_url(page: str) -> str:
    """The published page ``docs/PAGE`` (``rules.md``, ``calibration.md``, ...)."""
    return f"{REPOSITORY}/blob/main/docs/{page}"


def rule_doc_url(code: str, name: str) -> str:
    """A rule's section of the generated rule reference (GitHub's heading anchors): what SARIF's
    ``helpUri`` and the editor's diagnostic link point at."""
    return f"{docs_url('rules.md')}#{code.lower()}-{name}"
