"""What every part of the store shares: the database, the dialect, the common inserts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from monitor.store import rows
from monitor.store.db import Database, Tx, redact
from monitor.types import Alert, Delivery


class StoreBase:
    """The database and what every part of the store needs from it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def url(self) -> str:
        return redact(self.db.url)

    def close(self) -> None:
        self.db.close()

    def migrate(self) -> int:
        return self.db.migrate()

    def ping(self) -> None:
        with self.db.transaction() as tx:
            tx.one("SELECT 1 AS ok")

    def _skip_locked(self) -> str:
        return " FOR UPDATE SKIP LOCKED" if self.dialect == "postgresql" else ""

    def _insert_alerts(self, tx: Tx, alerts: Sequence[Alert]) -> Iterable[str]:
        for a in alerts:
            row = tx.one(
                "INSERT INTO alerts (id, rule, topic, severity, score, classifier, article_id, "
                "story_id, evidence, created_at, suppressed, group_pending) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING id",
                (
                    a.id,
                    a.rule,
                    a.topic,
                    a.severity,
                    a.score,
                    a.classifier,
                    a.article_id,
                    a.story_id,
                    rows.hits_json(a.evidence),
                    a.created_at.timestamp(),
                    a.suppressed,
                    1 if a.grouped else 0,
                ),
            )
            if row is not None:
                yield str(row["id"])

    def _insert_deliveries(
        self, tx: Tx, deliveries: Sequence[Delivery], alerts: set[str] | None
    ) -> Iterable[str]:
        for d in deliveries:
            if alerts is not None and d.alert_ids and not set(d.alert_ids) <= alerts:
                continue
            row = tx.one(
                "INSERT INTO deliveries (id, channel, kind, payload, state, attempts, created_at, "
                "next_attempt_at) VALUES (?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING "
                "RETURNING id",
                (
                    d.id,
                    d.channel,
                    d.kind,
                    d.payload,
                    d.state.value,
                    d.created_at.timestamp(),
                    d.next_attempt_at.timestamp(),
                ),
            )
            if row is None:
                continue
            tx.executemany(
                "INSERT INTO delivery_alerts (delivery_id, alert_id) VALUES (?, ?) "
                "ON CONFLICT DO NOTHING",
                [(d.id, a) for a in d.alert_ids],
            )
            yield d.id


def _filters(*pairs: tuple[str, object]) -> tuple[str, list[object]]:
    clauses = [f"{col} = ?" for col, val in pairs if val is not None]
    params = [val for _, val in pairs if val is not None]
    return (" WHERE " + " AND ".join(clauses) if clauses else "", params)
