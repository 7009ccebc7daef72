"""Build hook: the rule matcher's hot modules are compiled to C with mypyc.

mypyc is the compiler of mypy, the project's type checker: it turns the same strictly typed
modules into C extensions (matching 1.2-1.7x faster, see docs/benchmarks.md), and the source
stays plain Python. Which modules are compiled is listed once, in ``monitor/build.py``. A C
compiler and the Python headers are needed at install time; ``MONITOR_PURE_PYTHON=1`` installs
without compiling (same behaviour, slower matching).
"""

import os
import runpy
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent


def compiled_modules() -> list[str]:
    # Read without importing the package (its dependencies need not be installed yet).
    return list(runpy.run_path(str(ROOT / "monitor" / "build.py"))["SOURCES"])


def extensions() -> list[object]:
    if os.environ.get("MONITOR_PURE_PYTHON") == "1":
        return []
    from mypyc.build import mypycify

    return mypycify(compiled_modules(), opt_level="3", group_name="news_monitor")


setup(ext_modules=extensions())
