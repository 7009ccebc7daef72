"""JSON logs on stdout: one object per line with stable field names.

Fields: ``ts`` (UTC ISO 8601), ``level``, ``logger``, ``msg``, and whichever of the stable context
fields a record carries (``feed``, ``url``, ``article``, ``rule``, ``alert``, ``delivery``,
``channel``, ...). Secrets never reach a log line: nothing logs configuration values wholesale.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

CONTEXT_FIELDS = (
    "feed",
    "url",
    "status",
    "article",
    "rule",
    "alert",
    "delivery",
    "channel",
    "attempt",
    "elapsed",
    "file",
    "event",
    "error",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str = "info", *, stream: TextIO | None = None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries log every request at INFO; ours already says what matters.
    for noisy in ("httpx", "httpcore", "apscheduler", "aiosmtplib", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
