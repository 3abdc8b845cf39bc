"""A run's settings: the rule selection and fail level the command line gives, each file's
configuration with the command line's values over it, and where the cache lives."""

from __future__ import annotations

import os
import sys

import click

from gradlint.cli.output import EXIT_ERROR, _fail, _say
from gradlint.vocab import Confidence


def _split(values) -> tuple:
    out = []
    for v in values or ():
        out.extend(x.strip() for x in v.split(",") if x.strip())
    return tuple(out)


def rule_selection_options(f):
    """--select / --ignore, shared by every command that runs rules."""
    f = click.option(
        "--ignore", multiple=True, metavar="CODES", help="Rule codes or prefixes to skip (comma-separated)."
    )(f)
    f = click.option(
        "--select",
        multiple=True,
        metavar="CODES",
        help="Only these rule codes or prefixes (comma-separated), e.g. GL1,GL201.",
    )(f)
    return f


def _failing(level: str, refuted_fail: bool):
    """Whether a finding makes the run exit 1: at least as severe as ``level``, and not
    refuted by a measurement unless ``refuted_fail``."""
    from gradlint.config import FAIL_LEVELS

    least = FAIL_LEVELS.index(level)

    def fails(d) -> bool:
        if d.confidence == Confidence.REFUTED and not refuted_fail:
            return False
        return d.severity in FAIL_LEVELS and FAIL_LEVELS.index(d.severity) >= least

    return fails


def _all_rules():
    from gradlint.rule import all_rules

    return all_rules()


def _resolver(overrides, config_file, isolated):
    """Each file's settings (its nearest configuration, or ``--config``'s, or none with
    ``--isolated``) with the command line's values over them."""
    from gradlint.config_resolve import Resolver

    return _configured(
        lambda: Resolver(
            overrides, isolated=isolated, config_file=config_file, warn=lambda w: _say(f"gradlint: warning: {w}")
        )
    )


def _configured(call, *args):
    """``call(*args)``, where a configuration file that cannot be used ends the run (exit 2)."""
    from gradlint.config import ConfigError

    try:
        return call(*args)
    except ConfigError as exc:
        _fail(str(exc))
        sys.exit(EXIT_ERROR)


def _start_dir(paths):
    """Where the nearest configuration is looked for: the folder holding every path checked."""
    from pathlib import Path

    existing = [os.path.abspath(p) for p in paths if os.path.exists(p)]
    if not existing:
        # a name that is not on disk (--stdin-filename of a new buffer): its nearest existing folder
        for p in paths:
            folder = os.path.dirname(os.path.abspath(p))
            while folder and not os.path.isdir(folder):
                folder = os.path.dirname(folder)
            if folder:
                return Path(folder)
        return Path.cwd()
    common = os.path.commonpath(existing)
    return Path(common if os.path.isdir(common) else os.path.dirname(common))


def _cache_dir(cache_dir, config):
    if cache_dir:
        return os.path.abspath(cache_dir)
    configured = config.data.get("cache-dir")
    if configured:
        return str((config.root / configured).resolve())
    if os.environ.get("GRADLINT_CACHE_DIR"):
        return os.path.abspath(os.environ["GRADLINT_CACHE_DIR"])
    return str(config.root.resolve() / ".gradlint_cache")
