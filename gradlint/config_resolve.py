"""The engine's Settings of each file: its configuration's values (:mod:`gradlint.config_files`)
with the command line's over them, as ruff resolves them."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path

from gradlint.config_files import Config, config_in, load_config_file
from gradlint.settings import Settings


def settings_from(
    config: Config,
    *,
    select=(),
    extend_select=(),
    ignore=(),
    exclude=(),
    extend_exclude=(),
    respect_gitignore=None,
    force_exclude=None,
    preview=None,
    jobs=None,
    fixes=False,
):
    """The engine's Settings: command-line values (given) over the file's, over the defaults.

    ``select`` and ``exclude`` replace; ``extend-select``, ``ignore`` and ``extend-exclude``
    add to what the file says."""
    from gradlint.files import DEFAULT_EXCLUDE

    data = config.data
    root = str(config.root.resolve())
    return Settings(
        select=tuple(select or data.get("select", ())),
        extend_select=tuple(data.get("extend-select", ())) + tuple(extend_select),
        ignore=tuple(data.get("ignore", ())) + tuple(ignore),
        per_file_ignores=tuple((p, tuple(c)) for p, c in data.get("per-file-ignores", {}).items()),
        preview=bool(data.get("preview", False) if preview is None else preview),
        rule_options=tuple(sorted((code, tuple(sorted(opts.items()))) for code, opts in data.get("rules", {}).items())),
        exclude=tuple(exclude or data.get("exclude", ()) or DEFAULT_EXCLUDE),
        extend_exclude=tuple(data.get("extend-exclude", ())) + tuple(extend_exclude),
        respect_gitignore=bool(data.get("respect-gitignore", True) if respect_gitignore is None else respect_gitignore),
        force_exclude=bool(data.get("force-exclude", False) if force_exclude is None else force_exclude),
        jobs=int(data.get("jobs", 0) if jobs is None else jobs),
        fixes=fixes,
        root=root,
        configured=configured_models(data.get("dynamic", {}).get("models", {})),
    )


def configured_models(models: dict) -> tuple:
    """The models ``[tool.gradlint.dynamic.models]`` builds with constructor kwargs, for the
    static analysis too: ((absolute path, class name, sorted kwargs pairs), ...)."""
    out = []
    for (path, name), spec in sorted(models.items()):
        kwargs = spec.get("kwargs")
        if kwargs and not name.endswith("()"):
            out.append((path, name, tuple(sorted((str(k), _frozen(v)) for k, v in kwargs.items()))))
    return tuple(out)


def _frozen(value):
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((str(k), _frozen(v)) for k, v in value.items())
    return value


def settings_for(path: Path, isolated: bool = False):
    """Settings for linting one file from its nearest configuration (the language server's view)."""
    return Resolver(isolated=isolated)(path)


class Resolver:
    """The settings of each file: those of its nearest configuration file, as ruff resolves
    them (so a file's findings do not depend on what else is checked with it), with the
    command line's values (``overrides``, the keywords of :func:`settings_from`) over them.

    With ``config_file`` (``--config``) or ``isolated``, every file gets that one
    configuration. Lookups are memoized per folder and per configuration file; a
    configuration's warnings go to ``warn`` once, when it is first read."""

    def __init__(self, overrides: dict | None = None, *, isolated: bool = False, config_file=None, warn=None) -> None:
        self.overrides = dict(overrides or {})
        self.warn = warn
        self.isolated, self.config_file = isolated, config_file
        self._fixed: Config | None = None
        self._folders: dict[str, Path | None] = {}
        self._configs: dict[Path | None, Config] = {}
        self._settings: dict[Path | None, object] = {}
        if isolated:
            self._fixed = Config()
        elif config_file is not None:
            self._fixed = self._read(Path(os.path.abspath(config_file)))

    def read_files(self) -> list[Path]:
        """Every configuration file read so far (with the files they extend)."""
        return sorted({p for config in self._configs.values() for p in config.chain})

    def override(self, **values) -> None:
        """Set more command-line values (the settings made so far are made again)."""
        self.overrides.update(values)
        self._settings.clear()

    def _read(self, path: Path | None) -> Config:
        config = self._configs.get(path)
        if config is None:
            config = self._configs[path] = Config() if path is None else load_config_file(path)
            if self.warn is not None:
                for warning in config.warnings:
                    self.warn(warning)
        return config

    def _nearest(self, folder: str) -> Path | None:
        walked = []
        found: Path | None = None
        while True:
            if folder in self._folders:
                found = self._folders[folder]
                break
            walked.append(folder)
            found = config_in(Path(folder))
            if found is not None:
                break
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for f in walked:
            self._folders[f] = found
        return found

    def config_for(self, path) -> Config:
        """The configuration that governs ``path`` (a file, a folder, or a name not on disk)."""
        if self._fixed is not None:
            return self._fixed
        path = os.path.abspath(path)
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        while folder and not os.path.isdir(folder):  # a new buffer's name: its nearest existing folder
            folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
        return self._read(self._nearest(folder or os.getcwd()))

    def __call__(self, path):
        """The Settings for ``path``."""
        config = self.config_for(path)
        key = config.path
        settings = self._settings.get(key)
        if settings is None:
            settings = self._settings[key] = settings_from(config, **self.overrides)
        return settings

    def show(self, path) -> str:
        """``--show-settings``: the resolved settings of ``path`` and the files they came from."""
        config = self.config_for(path)
        settings = self(path)
        lines = [
            f"Settings for {path}",
            "Read from: "
            + (" <- extends ".join(map(str, config.chain)) if config.chain else "no configuration file (the defaults)"),
        ]
        if self.overrides:
            given = sorted(k for k, v in self.overrides.items() if v not in (None, (), False))
            if given:
                lines.append("Command line: " + ", ".join(k.replace("_", "-") for k in given))
        for f in fields(settings):
            lines.append(f"  {f.name.replace('_', '-')} = {getattr(settings, f.name)!r}")
        from gradlint.rule import enabled_codes

        lines.append(
            f"  enabled rules for this file = {', '.join(sorted(enabled_codes(settings, str(path)))) or 'none'}"
        )
        return "\n".join(lines) + "\n"
