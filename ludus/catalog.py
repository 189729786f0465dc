"""Where the declarative inputs come from: the built-in ``trials/`` shipped inside the package, extended (or
replaced) by a local directory.

The built-ins live in ``ludus/trials/`` (package data, so a wheel carries them; the repository's top-level
``trials`` is a link to that directory, one copy of every file). A local directory - ``LUDUS_TRIALS_DIR``, else
``./trials`` when it exists - adds definitions and overrides built-ins of the same name, file by file. When
its ``trials.yaml`` says ``builtins: replace``, only the local definitions count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from ludus.constants import BUILTINS_EXTEND, BUILTINS_MODES, BUILTINS_REPLACE, TRIALS_MANIFEST
from ludus.errors import InputError

BUILTIN_DIR = Path(__file__).resolve().parent / "trials"


@dataclass(frozen=True)
class Sources:
    """The directories definitions are read from, lowest precedence first."""

    dirs: tuple[Path, ...]
    local: Path | None
    mode: str

    def where(self, subdir: str = "") -> str:
        """The places looked in, for error messages."""
        names = []
        for d in self.dirs:
            label = "built-in" if d == BUILTIN_DIR else "local"
            names.append(f"{d / subdir if subdir else d} ({label})")
        if self.local is not None and self.local not in self.dirs:
            names.append(f"{self.local} (local)")
        return ", ".join(names) or "nowhere"


def sources(configured: Path | str | None = None) -> Sources:
    """The built-in directory and the local one (``configured``, else ``./trials`` when present)."""
    local: Path | None
    if configured is not None:
        local = Path(configured)
        if not local.is_dir():
            raise InputError("trials_dir", str(local), "is not a directory")
    else:
        local = Path.cwd() / "trials"
        local = local if local.is_dir() else None
    if local is not None and local.resolve() == BUILTIN_DIR:
        local = None  # the repository's ./trials is the built-in directory itself
    mode = _mode(local) if local is not None else BUILTINS_EXTEND
    dirs: list[Path] = []
    if mode == BUILTINS_EXTEND and BUILTIN_DIR.is_dir():
        dirs.append(BUILTIN_DIR)
    if local is not None:
        dirs.append(local)
    return Sources(tuple(dirs), local, mode)


def definitions(subdir: str, pattern: str, configured: Path | str | None = None) -> dict[str, Path]:
    """``{stem: path}`` of the files matching ``subdir/pattern``; a local file wins over a built-in one."""
    out: dict[str, Path] = {}
    for d in sources(configured).dirs:
        for path in sorted((d / subdir).glob(pattern)):
            out[path.stem.lower()] = path
    return out


def find(relpath: str, configured: Path | str | None = None) -> Path | None:
    """The file ``relpath`` (e.g. ``models/cpo.yaml``) from the local directory, else the built-ins."""
    for d in reversed(sources(configured).dirs):
        path = d / relpath
        if path.is_file():
            return path
    return None


def _mode(local: Path) -> str:
    manifest = local / TRIALS_MANIFEST
    if not manifest.is_file():
        return BUILTINS_EXTEND
    try:
        spec = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(str(manifest), "yaml", f"not valid YAML: {exc}") from None
    mode = str(spec.get("builtins", BUILTINS_EXTEND)).strip().lower() if isinstance(spec, dict) else ""
    if mode not in BUILTINS_MODES:
        raise InputError(f"{manifest}.builtins", mode, f"must be one of {', '.join(BUILTINS_MODES)}")
    return mode


__all__ = ["BUILTINS_REPLACE", "BUILTIN_DIR", "Sources", "definitions", "find", "sources"]
