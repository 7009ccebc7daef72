"""The store: the source of truth. Memory is only a cache.

One interface, two backends (SQLite, PostgreSQL) sharing the same SQL. Every public method is one
committed transaction. Due feeds and due deliveries are *claimed* with leases, so several daemon
replicas can share one PostgreSQL database; the single-node path is the same code. Uniqueness
constraints (article id, alert per rule and story, delivery id) make duplicates impossible even
when two replicas race.
"""

from __future__ import annotations

from monitor.store.db import open_database
from monitor.store.feeds import FeedStore
from monitor.store.history import HistoryStore
from monitor.store.outbox import OutboxStore
from monitor.store.values import (
    ChannelState,
    CommitResult,
    DedupeView,
    DeliveryOutcome,
    PollRecord,
)

__all__ = [
    "ChannelState",
    "CommitResult",
    "DedupeView",
    "DeliveryOutcome",
    "PollRecord",
    "Store",
    "open_store",
]


class Store(FeedStore, OutboxStore, HistoryStore):
    """All reads and writes of persistent state: feeds and polls (feeds.py), the delivery
    outbox (outbox.py), alerts, silences and statistics (history.py)."""


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Open the database at ``url`` and bring its schema up to date."""
    store = Store(open_database(url))
    if migrate:
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
    return store
