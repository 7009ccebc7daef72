"""The project's exception tree, drawn once.

Every error raised by news-monitor derives from :class:`MonitorError`, carries its subject
(a feed URL, a file and line, a delivery id) and builds its own one-line message. Foreign
libraries' errors are translated at the boundary module that imports them
(``raise FeedError(...) from exc``).

    MonitorError
    ├── ConfigError            bad configuration file or value            (exit 2)
    ├── RuleError              one or more invalid rule files             (exit 1)
    ├── StoreError             the database is unreachable or refused a statement
    │   └── MigrationError     the schema cannot be brought up to date
    ├── FeedError              one feed could not be fetched or parsed
    │   ├── FetchError         network, HTTP status, size, time limits
    │   │   └── FeedGoneError  HTTP 410: the feed is disabled
    │   └── ParseError         the bytes are not a feed feedparser can read
    ├── ModelError             classifier model missing, foreign, tampered or mismatched
    ├── DataError              a labelled-data or article JSON Lines file is invalid
    └── DeliveryError          one attempt to deliver failed
        ├── RetryableDeliveryError   worth another attempt (5xx, 429, timeouts, resets)
        └── PermanentDeliveryError   never worth another attempt (most 4xx)
            └── ChannelGoneError     HTTP 410: the channel is disabled
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class MonitorError(Exception):
    """Base of every news-monitor error. ``str(err)`` is a complete one-line message."""

    exit_code: int = 1


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in a file: ``FILE:LINE:COLUMN: key.path: reason``."""

    file: str
    line: int | None
    column: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.reason}"


class ConfigError(MonitorError):
    """The configuration is invalid; ``problems`` lists every mistake found at once."""

    exit_code = 2

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        if isinstance(problems, str):
            problems = [Problem(file="config", line=None, column=None, path="", reason=problems)]
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class RuleError(MonitorError):
    """One or more rule files are invalid; ``problems`` lists every mistake found at once."""

    exit_code = 1

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StoreError(MonitorError):
    """The store failed; ``url`` is the storage URL with any password removed."""

    def __init__(self, message: str, *, url: str = "") -> None:
        self.url = url
        super().__init__(f"{url}: {message}" if url else message)


class MigrationError(StoreError):
    """The schema cannot be migrated (for example it is newer than this program)."""


class FeedError(MonitorError):
    """A feed failed; the message names the feed URL."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        self.reason = message
        super().__init__(f"{url}: {message}")


class FetchError(FeedError):
    """The feed could not be fetched (network, HTTP status, size or time limit)."""

    def __init__(
        self, url: str, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        super().__init__(url, message)


class FeedGoneError(FetchError):
    """HTTP 410 Gone: the publisher removed the feed; it is disabled."""


class ParseError(FeedError):
    """The body is not a feed that can be read."""


class ModelError(MonitorError):
    """The classifier model file is missing, foreign, tampered with or mismatched."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}")


class DataError(MonitorError):
    """A JSON Lines input (labelled data, articles to score) is invalid."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file = file
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {message}")


class DeliveryError(MonitorError):
    """One delivery attempt failed. Subclasses say whether another attempt is worth it."""

    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        channel: str = "",
        delivery_id: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.channel = channel
        self.delivery_id = delivery_id
        self.retry_after = retry_after
        self.detail = message
        subject = " ".join(x for x in (channel, delivery_id) if x)
        super().__init__(f"{subject}: {message}" if subject else message)


class RetryableDeliveryError(DeliveryError):
    """Worth another attempt after the backoff (or ``retry_after`` seconds)."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """Never worth another attempt: the delivery goes straight to dead."""

    retryable = False


class ChannelGoneError(PermanentDeliveryError):
    """The receiver answered 410 Gone: the channel is disabled until an operator re-enables it."""
