"""gradlint's rules: one module per rule, discovered by walking this package.

Installed as ``gradlint.rules`` (setuptools ``package-dir``); the repository keeps the
folder at the top level as ``rules/``.
"""
