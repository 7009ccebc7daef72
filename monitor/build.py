"""Which modules are compiled to C at install time, and whether they are.

``SOURCES`` (compiled by mypyc) and ``C_SOURCES`` (C extensions) are the one list: ``setup.py``
compiles these files and the Makefile re-installs the project when one changes. Where a compiled
copy is older than its source (a checkout edited and not re-installed), Python would still import
the compiled one; :func:`stale` names them, so the test suite and the daemon can say so instead of
running old code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# The rule matcher, whose per-article work grows with the matches, and the tokeniser it shares with
# the classifier (docs/benchmarks.md).
SOURCES = ("monitor/text.py", "monitor/matchnodes.py", "monitor/match.py")
# Where a long field's tokens stand, in one pass (the matcher's evidence), and the near-duplicate
# signature's arithmetic (docs/benchmarks.md).
C_SOURCES = ("monitor/_scan.c", "monitor/_shingle.c")


def modules() -> tuple[str, ...]:
    return tuple(_sources())


def _sources() -> dict[str, str]:
    """Module -> the file name of its source."""
    return {s.rsplit(".", 1)[0].replace("/", "."): s.rsplit("/", 1)[1] for s in SOURCES + C_SOURCES}


def _extension(name: str) -> Path | None:
    """The compiled extension the import system finds for a module, or None (plain source)."""
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and not origin.endswith(".py") else None


def compiled() -> dict[str, bool]:
    """Module -> whether the import system finds its compiled extension."""
    return {name: _extension(name) is not None for name in modules()}


def stale() -> list[str]:
    """The compiled modules whose source file beside them is newer than the extension."""
    out = []
    for name, source in _sources().items():
        ext = _extension(name)
        if ext is not None and older(ext, ext.parent / source):
            out.append(name)
    return out


def older(extension: Path, source: Path) -> bool:
    """Was ``extension`` built before ``source`` was last written?"""
    return source.exists() and extension.stat().st_mtime < source.stat().st_mtime
