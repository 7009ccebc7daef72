"""Build hook: the rule matcher's hot modules are compiled to C with mypyc, beside two small C
extensions.

mypyc is the compiler of mypy, the project's type checker: it turns the same strictly typed
modules into C extensions (matching 1.2-1.7x faster, see docs/benchmarks.md), and the source
stays plain Python. ``monitor/_scan.c`` is a C extension of one function (where a text's tokens
stand, in one pass), which the matcher uses when it is there; ``monitor/_shingle.c`` computes a
near-duplicate signature's hashes in one pass (monitor/dedupe.py keeps the numpy reference).
Which modules are compiled is listed once, in ``monitor/build.py``. A C compiler and the Python headers are needed at install
time; ``MONITOR_PURE_PYTHON=1`` installs without compiling (same behaviour, slower matching).
"""

import os
import runpy
from pathlib import Path
from typing import Any

from setuptools import Extension, setup

ROOT = Path(__file__).parent


def build_lists() -> dict[str, Any]:
    # Read without importing the package (its dependencies need not be installed yet).
    return runpy.run_path(str(ROOT / "monitor" / "build.py"))


def extensions() -> list[Any]:
    if os.environ.get("MONITOR_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify

    lists = build_lists()
    compiled = mypycify(list(lists["SOURCES"]), opt_level="3", group_name="news_monitor")
    plain = [
        Extension(source.removesuffix(".c").replace("/", "."), [source], extra_compile_args=["-O3"])
        for source in lists["C_SOURCES"]
    ]
    return [*compiled, *plain]


setup(ext_modules=extensions())
