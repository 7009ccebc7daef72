"""The matcher's modules are compiled (mypyc, C) where the build says so, and never stale."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor import build

ROOT = Path(__file__).resolve().parents[1]


def test_listed_sources_are_package_modules() -> None:
    for source in build.SOURCES + build.C_SOURCES:
        assert (ROOT / source).is_file(), source
    assert build.modules() == (
        *(s.removesuffix(".py").replace("/", ".") for s in build.SOURCES),
        *(s.removesuffix(".c").replace("/", ".") for s in build.C_SOURCES),
    )
    assert all(m.startswith("monitor.") for m in build.modules())


def test_the_matcher_runs_compiled() -> None:
    found = build.compiled()
    assert set(found) == set(build.modules())
    if not all(found.values()):
        if os.environ.get("MONITOR_TEST_COMPILED_REQUIRED") == "1":
            pytest.fail(f"MONITOR_TEST_COMPILED_REQUIRED=1 but not compiled: {found}")
        pytest.skip(f"installed without compiling (MONITOR_PURE_PYTHON=1?): {found}")
    assert build.stale() == []


def test_an_extension_older_than_its_source_is_stale(tmp_path: Path) -> None:
    ext, src = tmp_path / "m.cpython-311-x86_64-linux-gnu.so", tmp_path / "m.py"
    ext.write_bytes(b"")
    src.write_text("")
    os.utime(ext, (1_000_000, 1_000_000))
    os.utime(src, (2_000_000, 2_000_000))
    assert build.older(ext, src)
    os.utime(ext, (3_000_000, 3_000_000))
    assert not build.older(ext, src)
    src.unlink()
    assert not build.older(ext, src)  # no source beside it (an installed wheel): not stale
