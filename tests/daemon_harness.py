"""Run the real `monitor` command as a subprocess against local feed and webhook servers."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

RULE = """\
topic: sanctions
description: Sanctions and asset freezes (test rule)
severity: high
any: [sanction, asset freeze, embargo]
"""


def rss(items: list[tuple[str, str, str]]) -> bytes:
    """An RSS 2.0 document; items are (guid, title, description)."""
    body = "".join(
        f"<item><guid>{g}</guid><title>{t}</title><link>https://news.example/{g}</link>"
        f"<description>{d}</description><pubDate>Sun, 01 Nov 2026 12:00:00 GMT</pubDate></item>"
        for g, t, d in items
    )
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Test wire</title>'
        f"<link>https://news.example/</link><description>t</description>{body}</channel></rss>"
    ).encode()


def write_config(
    tmp: Path,
    *,
    store_url: str,
    feeds: dict[str, str],
    hook_url: str,
    extra: str = "",
    rule: str = RULE,
) -> Path:
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    (rules / "sanctions-test.yaml").write_text(rule)
    feed_blocks = "".join(
        f'[[feeds]]\nname = "{name}"\nurl = "{url}"\ninterval = "1s"\n\n'
        for name, url in feeds.items()
    )
    cfg = tmp / "monitor.toml"
    cfg.write_text(
        textwrap.dedent(
            f"""\
            [storage]
            url = "{store_url}"

            [rules]
            paths = ["rules"]
            watch = true

            [classifier]
            model = "none"

            [fetch]
            timeout = "5s"
            min_interval = "1s"
            jitter = 0.0

            [[channels]]
            name = "hook"
            type = "webhook"
            url = "{hook_url}"
            secret = "{SECRET}"
            timeout = "3s"

            [routes]
            default = ["hook"]

            [delivery]
            backoff = ["1s", "1s", "1s"]
            jitter = 0.0
            poll = "200ms"

            [admin]
            listen = "127.0.0.1:0"
            """
        )
        + extra
        + "\n"
        + feed_blocks
    )
    return cfg


def monitor(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


class Daemon:
    """`monitor run` in a subprocess, its JSON log lines collected as they come."""

    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: list[dict[str, object]] = []
        self.raw: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.raw.append(line)
                with contextlib.suppress(ValueError):
                    self.lines.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(
        self, pred: Callable[[dict[str, object]], bool], timeout: float = 20
    ) -> dict[str, object]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if pred(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("log line not seen; output:\n" + "".join(self.raw[-40:]))
                self._cond.wait(min(left, 0.2))

    def stop(self, sig: int, timeout: float = 15) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)
