"""Memory: the daemon's resident set after N articles, and its growth over N more.

N is 30,000 by default (one round; the whole group takes ~5 minutes on 2 cores);
``BENCH_MEMORY_ARTICLES=100000`` measures the brief's 100,000 + 100,000 (~20+ minutes).

The real daemon (``monitor run``, a subprocess) polls 1,000 feeds of 30 items; each time it has
stored a whole round, the feed server replaces every item, so each round brings 30,000 new
articles. Its VmRSS / VmHWM are read from ``/proc/<pid>/status`` (its worker processes and
their fork server are reported in the note, not added).

``memory-peak``: VmHWM once >= N articles are stored; floor = the RSS of a process that has
only loaded the same program, model and rules (what the daemon cannot go below), ratio = floor /
value. ``memory-growth``: VmRSS once >= 2N are stored; floor = 1.1 x the VmRSS at N
(the target: growth < 10 %), ratio = floor / value, so >= 1 meets the target.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.bench_ingest import ROOT, fetch_section, model_name
from bench.harness import Result
from bench.servers import feed_server, feed_urls, receiver, running_daemon, write_config

FEEDS = int(os.environ.get("BENCH_FEEDS", "1000"))
# 30,000 keeps `make bench` short; BENCH_MEMORY_ARTICLES=100000 gives the full figure (~7 min).
FIRST = int(os.environ.get("BENCH_MEMORY_ARTICLES", "30000"))
MiB = 1024 * 1024


def _status(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = float(value.split()[0]) * 1024
    return out


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    return kids


def _children_rss(pid: int) -> float:
    """RSS of every descendant: the worker processes are children of the daemon's fork server."""
    total = 0.0
    for child in _children(pid):
        with contextlib.suppress(OSError):
            total += _status(child).get("VmRSS", 0.0)
        total += _children_rss(child)
    return total


def _articles(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0])
    except sqlite3.Error:
        return 0


def _baseline(config: Path) -> float:
    """RSS of a process holding the program, model and rules, and nothing else."""
    code = (
        "import sys; from pathlib import Path; from monitor.config import load_config; "
        "from monitor.daemon import build_scorer; import monitor.pipeline, monitor.admin; "
        "s = build_scorer(load_config(Path(sys.argv[1]))); "
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip()) * 1024


def run() -> Iterator[Result]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-memory-") as tmpdir,
        feed_server(FEEDS, 30) as feeds,
        receiver() as rx,
    ):
        tmp = Path(tmpdir)
        config = tmp / "monitor.toml"
        db = tmp / "monitor.db"
        write_config(
            config,
            store=f"sqlite:///{db}",
            urls=feed_urls(feeds, FEEDS),
            hook=f"{rx.base}/hook",
            model=model_name(),
            rules=str(ROOT / "rules"),
            interval="10s",
            extra=fetch_section() + 'min_interval = "5s"\n',
        )
        floor = _baseline(config)
        marks: dict[str, dict[str, float]] = {}
        started = time.monotonic()
        with running_daemon(config, tmp / "daemon.log") as daemon:
            target = FEEDS * 30
            while len(marks) < 2:
                deadline = time.monotonic() + 600
                while (n := _articles(db)) < target:
                    if daemon.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"daemon stopped or stalled at {n} articles")
                    time.sleep(0.5)
                for name, goal in (("first", FIRST), ("second", 2 * FIRST)):
                    if name not in marks and n >= goal:
                        marks[name] = _status(daemon.pid) | {
                            "articles": n,
                            "workers": _children_rss(daemon.pid),
                        }
                target = n + FEEDS * 30
                feeds.post("/_ctl/rotate")
        first, second = marks["first"], marks["second"]
        minutes = (time.monotonic() - started) / 60
        yield Result(
            name="memory-peak",
            value=first["VmHWM"] / MiB,
            unit="MiB",
            floor=floor / MiB,
            higher_is_better=False,
            note=(
                f"after {first['articles']:.0f} articles; floor = program+model+rules loaded; "
                f"worker processes {first['workers'] / MiB:.0f} MiB more"
            ),
        )
        growth = (second["VmRSS"] - first["VmRSS"]) / first["VmRSS"] * 100
        yield Result(
            name="memory-growth",
            value=second["VmRSS"] / MiB,
            unit="MiB",
            floor=1.1 * first["VmRSS"] / MiB,
            higher_is_better=False,
            note=(
                f"RSS {first['VmRSS'] / MiB:.0f} -> {second['VmRSS'] / MiB:.0f} MiB from "
                f"{first['articles']:.0f} to {second['articles']:.0f} articles ({growth:+.1f}%); "
                f"floor = 1.1 x the first; {minutes:.1f} min"
            ),
        )


GROUPS = {"memory": run}
