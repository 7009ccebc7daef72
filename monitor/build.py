"""Which modules are compiled to C (mypyc) at install time, and whether they are.

``SOURCES`` is the one list: ``setup.py`` compiles these files and the Makefile re-installs the
project when one changes. Where a compiled copy is older than its source (a checkout edited and
not re-installed), Python would still import the compiled one; :func:`stale` names them, so the
test suite and the daemon can say so instead of running old code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

# The rule matcher, whose per-article work grows with the matches, and the tokeniser it shares with
# the classifier (docs/benchmarks.md).
SOURCES = ("monitor/text.py", "monitor/matchnodes.py", "monitor/match.py")


def modules() -> tuple[str, ...]:
    return tuple(s.removesuffix(".py").replace("/", ".") for s in SOURCES)


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
    for name in modules():
        ext = _extension(name)
        if ext is not None and older(ext, ext.parent / f"{name.rsplit('.', 1)[1]}.py"):
            out.append(name)
    return out


def older(extension: Path, source: Path) -> bool:
    """Was ``extension`` built before ``source`` was last written?"""
    return source.exists() and extension.stat().st_mtime < source.stat().st_mtime
