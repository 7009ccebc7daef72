"""Alerts, digests, silences, statistics and retention."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime

from monitor.store import rows
from monitor.store.base import StoreBase, _filters
from monitor.store.db import Row
from monitor.store.values import (
    POLL_BUCKET,
)
from monitor.types import Alert, Article, Delivery


class HistoryStore(StoreBase):
    # ---------------------------------------------------------------- alerts, silences, history
    def list_alerts(self, *, limit: int = 100, rule: str | None = None) -> list[Alert]:
        where, params = _filters(("rule", rule))
        with self.db.transaction() as tx:
            found = tx.all(
                f"SELECT * FROM alerts{where} ORDER BY created_at DESC, id LIMIT ?",
                (*params, limit),
            )
        return [rows.alert(r) for r in found]

    def get_alerts(self, ids: Sequence[str]) -> list[Alert]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        with self.db.transaction() as tx:
            found = tx.all(f"SELECT * FROM alerts WHERE id IN ({marks})", list(ids))
        by_id = {r["id"]: rows.alert(r) for r in found}
        return [by_id[i] for i in ids if i in by_id]

    def suppression_state(
        self, rules: Iterable[str], now: datetime
    ) -> tuple[set[str], dict[str, datetime]]:
        """What routing a poll's matches needs, in one transaction: which of ``rules`` are
        silenced at ``now``, and when each last raised an alert that was not suppressed (for
        cooldowns)."""
        wanted = sorted(set(rules))
        if not wanted:
            return set(), {}
        marks = ",".join("?" * len(wanted))
        t = now.timestamp()
        with self.db.transaction(write=False) as tx:
            silenced = tx.all(
                f"SELECT DISTINCT rule FROM silences WHERE rule IN ({marks}) "
                "AND starts_at <= ? AND ends_at > ?",
                (*wanted, t, t),
            )
            last = tx.all(
                f"SELECT rule, MAX(created_at) AS t FROM alerts WHERE rule IN ({marks}) "
                "AND suppressed IS NULL GROUP BY rule",
                wanted,
            )
        return (
            {r["rule"] for r in silenced},
            {r["rule"]: rows.must_dt(r["t"]) for r in last if r["t"] is not None},
        )

    def flush_groups(
        self,
        now: datetime,
        windows: Mapping[str, float],
        build: Callable[[str, list[tuple[Alert, Article]], datetime], Sequence[Delivery]],
    ) -> tuple[str, ...]:
        """Turn each rule's grouped alerts into digest deliveries once its window has passed.

        ``windows`` maps rule -> group window in seconds. A window opens with the rule's oldest
        waiting alert and closes ``window`` seconds later; every alert waiting then goes into
        one digest per channel (``build`` renders them). One transaction: an alert is in
        exactly one digest, even with several replicas flushing at once.
        """
        t = now.timestamp()
        created: list[str] = []
        with self.db.transaction() as tx:
            waiting = tx.all(
                "SELECT * FROM alerts WHERE group_pending = 1 ORDER BY created_at, id"
                + self._skip_locked()
            )
            by_rule: dict[str, list[Row]] = {}
            for r in waiting:
                by_rule.setdefault(r["rule"], []).append(r)
            for rule, found in by_rule.items():
                window = windows.get(rule, 0.0)
                if found[0]["created_at"] + window > t:
                    continue
                alerts = [rows.alert(r) for r in found]
                marks = ",".join("?" * len(alerts))
                arts = {
                    r["id"]: rows.article(r)
                    for r in tx.all(
                        f"SELECT {rows.ARTICLE_COLUMNS} FROM articles WHERE id IN ({marks})",
                        [a.article_id for a in alerts],
                    )
                }
                items = [(a, arts[a.article_id]) for a in alerts if a.article_id in arts]
                deliveries = build(rule, items, now)
                created += self._insert_deliveries(tx, deliveries, None)
                digest = deliveries[0].id if deliveries else "unrouted"
                tx.execute(
                    f"UPDATE alerts SET group_pending = 0, digest_id = ? WHERE id IN ({marks})",
                    (digest, *[a.id for a in alerts]),
                )
        return tuple(created)

    def add_silence(self, rule: str, starts: datetime, ends: datetime, reason: str) -> int:
        with self.db.transaction() as tx:
            row = tx.one(
                "INSERT INTO silences (rule, starts_at, ends_at, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?) RETURNING id",
                (rule, starts.timestamp(), ends.timestamp(), reason, starts.timestamp()),
            )
        assert row is not None
        return int(row["id"])

    def list_silences(self, now: datetime | None = None) -> list[Row]:
        with self.db.transaction() as tx:
            if now is None:
                found = tx.all("SELECT * FROM silences ORDER BY id")
            else:
                found = tx.all(
                    "SELECT * FROM silences WHERE starts_at <= ? AND ends_at > ? ORDER BY id",
                    (now.timestamp(), now.timestamp()),
                )
        return [
            {
                "id": int(r["id"]),
                "rule": r["rule"],
                "starts_at": rows.must_dt(r["starts_at"]),
                "ends_at": rows.must_dt(r["ends_at"]),
                "reason": r["reason"],
            }
            for r in found
        ]

    def remove_silence(self, silence_id: int) -> bool:
        with self.db.transaction() as tx:
            return tx.execute("DELETE FROM silences WHERE id = ?", (silence_id,)) > 0

    def poll_stats(self, since: datetime) -> list[Row]:
        with self.db.transaction() as tx:
            return tx.all(
                "SELECT bucket, SUM(polls) AS polls, SUM(errors) AS errors, "
                "SUM(new_articles) AS new_articles FROM poll_stats WHERE bucket >= ? "
                "GROUP BY bucket ORDER BY bucket",
                (since.timestamp(),),
            )

    def alert_counts(self, since: datetime, bucket: float = POLL_BUCKET) -> list[Row]:
        """Alerts per topic per time bucket, for the dashboard."""
        with self.db.transaction() as tx:
            found = tx.all(
                "SELECT topic, created_at FROM alerts WHERE created_at >= ?", (since.timestamp(),)
            )
        counts: dict[tuple[float, str], int] = {}
        for r in found:
            key = (r["created_at"] - r["created_at"] % bucket, r["topic"])
            counts[key] = counts.get(key, 0) + 1
        return [{"bucket": b, "topic": t, "alerts": n} for (b, t), n in sorted(counts.items())]

    def prune(self, before: datetime) -> int:
        """Forget articles first seen before ``before`` that no alert refers to."""
        with self.db.transaction() as tx:
            return tx.execute(
                "DELETE FROM articles WHERE first_seen < ? AND id NOT IN "
                "(SELECT article_id FROM alerts)",
                (before.timestamp(),),
            )
