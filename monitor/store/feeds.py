"""Feeds, their polls, and the look-ups de-duplication needs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from monitor.config import FeedConfig
from monitor.store import rows
from monitor.store.base import StoreBase
from monitor.store.db import Tx
from monitor.store.values import (
    POLL_BUCKET,
    CommitResult,
    DedupeView,
    PollRecord,
)
from monitor.types import Article, FeedState, FeedStatus


class FeedStore(StoreBase):
    # ---------------------------------------------------------------- feeds
    def sync_feeds(self, feeds: Sequence[FeedConfig], now: datetime) -> None:
        """Make the stored feeds match the configuration (by name); others become disabled."""
        t = now.timestamp()
        with self.db.transaction() as tx:
            existing = {r["name"]: r for r in tx.all("SELECT * FROM feeds")}
            for f in feeds:
                tags = rows.dumps(sorted(f.tags))
                status = FeedStatus.ACTIVE.value if f.enabled else FeedStatus.DISABLED.value
                old = existing.pop(f.name, None)
                if old is None:
                    tx.execute(
                        "INSERT INTO feeds (name, url, config_url, interval_s, tags, status, "
                        "next_poll_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (f.name, f.url, f.url, f.interval, tags, status, t),
                    )
                    continue
                url = old["url"]
                if old["config_url"] != f.url:  # the operator changed it: start afresh
                    url = f.url
                    tx.execute(
                        "UPDATE feeds SET etag = NULL, last_modified = NULL, next_poll_at = ?, "
                        "consecutive_errors = 0 WHERE id = ?",
                        (t, old["id"]),
                    )
                elif old["status"] == FeedStatus.GONE.value and f.enabled:
                    status = FeedStatus.GONE.value  # stays off until the URL changes
                tx.execute(
                    "UPDATE feeds SET url = ?, config_url = ?, interval_s = ?, tags = ?, "
                    "status = ? WHERE id = ?",
                    (url, f.url, f.interval, tags, status, old["id"]),
                )
            for old in existing.values():
                tx.execute(
                    "UPDATE feeds SET status = ? WHERE id = ?",
                    (FeedStatus.DISABLED.value, old["id"]),
                )

    def claim_due_feeds(
        self,
        owner: str,
        now: datetime,
        *,
        limit: int,
        lease: float,
        due_by: datetime | None = None,
    ) -> list[FeedState]:
        """Lease up to ``limit`` active feeds whose poll is due (by ``due_by``, default now),
        earliest first."""
        t = now.timestamp()
        due = (due_by or now).timestamp()
        with self.db.transaction() as tx:
            ids = [
                r["id"]
                for r in tx.all(
                    "SELECT id FROM feeds WHERE status = 'active' AND next_poll_at <= ? "
                    "AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_poll_at, id "
                    "LIMIT ?" + self._skip_locked(),
                    (due, t, limit),
                )
            ]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            tx.execute(
                f"UPDATE feeds SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
                (owner, t + lease, *ids),
            )
            claimed = tx.all(
                f"SELECT * FROM feeds WHERE id IN ({marks}) ORDER BY next_poll_at, id", ids
            )
        return [rows.feed(r) for r in claimed]

    def list_feeds(self) -> list[FeedState]:
        with self.db.transaction() as tx:
            return [rows.feed(r) for r in tx.all("SELECT * FROM feeds ORDER BY name")]

    def set_feed_status(self, name: str, status: FeedStatus) -> bool:
        with self.db.transaction() as tx:
            n = tx.execute(
                "UPDATE feeds SET status = ?, consecutive_errors = 0, next_poll_at = 0 "
                "WHERE name = ?",
                (status.value, name),
            )
        return n > 0

    # ---------------------------------------------------------------- de-duplication look-ups
    def known_article_ids(self, ids: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(ids))
        found: set[str] = set()
        with self.db.transaction(write=False) as tx:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                found.update(
                    r["id"] for r in tx.all(f"SELECT id FROM articles WHERE id IN ({marks})", chunk)
                )
        return found

    def exact_duplicate(self, url: str, fingerprint: str) -> str | None:
        """The story id of a stored article with the same canonical URL or the same content."""
        with self.db.transaction() as tx:
            row = tx.one(
                "SELECT story_id FROM articles WHERE url = ? OR fingerprint = ? "
                "ORDER BY first_seen LIMIT 1",
                (url, fingerprint),
            )
        return None if row is None else str(row["story_id"])

    def near_candidates(self, signature: int, since: datetime, *, limit: int = 50) -> list[Article]:
        """Stored articles since ``since`` sharing at least one band of the signature."""
        b = rows.bands(signature)
        with self.db.transaction() as tx:
            found = tx.all(
                f"SELECT {rows.ARTICLE_COLUMNS} FROM articles WHERE first_seen >= ? AND "
                "signature <> 0 AND (band0 = ? OR band1 = ? OR band2 = ? OR band3 = ?) "
                "ORDER BY first_seen LIMIT ?",
                (since.timestamp(), *b, limit),
            )
        return [rows.article(r) for r in found]

    def dedupe_view(self, articles: Sequence[Article], since: datetime) -> DedupeView:
        """Everything de-duplicating one batch needs, read in one transaction.

        The same answers as ``known_article_ids``, ``exact_duplicate`` and ``near_candidates``
        per article, without a round trip each (a poll of 30 items made 60 of them).
        """
        ids = list(dict.fromkeys(a.id for a in articles))
        known = self.known_article_ids(ids)
        rest = [a for a in articles if a.id not in known]
        urls: set[str] = set()
        prints: set[str] = set()
        near: dict[str, tuple[Article, ...]] = {}
        with self.db.transaction(write=False) as tx:
            for i in range(0, len(rest), 250):
                chunk = rest[i : i + 250]
                marks = ",".join("?" * len(chunk))
                for r in tx.all(
                    f"SELECT url, fingerprint FROM articles WHERE url IN ({marks}) "
                    f"OR fingerprint IN ({marks})",
                    [a.url for a in chunk] + [a.fingerprint for a in chunk],
                ):
                    urls.add(r["url"])
                    prints.add(r["fingerprint"])
            for a in rest:
                if not a.signature or a.url in urls or a.fingerprint in prints:
                    continue
                found = tx.all(
                    f"SELECT {rows.ARTICLE_COLUMNS} FROM articles WHERE first_seen >= ? AND "
                    "signature <> 0 AND (band0 = ? OR band1 = ? OR band2 = ? OR band3 = ?) "
                    "ORDER BY first_seen LIMIT ?",
                    (since.timestamp(), *rows.bands(a.signature), 50),
                )
                near[a.id] = tuple(rows.article(r) for r in found)
        return DedupeView(
            known=frozenset(known), urls=frozenset(urls), fingerprints=frozenset(prints), near=near
        )

    def get_articles(self, ids: Iterable[str]) -> dict[str, Article]:
        wanted = list(dict.fromkeys(ids))
        out: dict[str, Article] = {}
        with self.db.transaction() as tx:
            for i in range(0, len(wanted), 500):
                chunk = wanted[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for r in tx.all(
                    f"SELECT {rows.ARTICLE_COLUMNS} FROM articles WHERE id IN ({marks})", chunk
                ):
                    out[r["id"]] = rows.article(r)
        return out

    # ---------------------------------------------------------------- the poll transaction
    def record_poll(self, rec: PollRecord) -> CommitResult:
        """Commit one poll: feed state, new articles, their alerts and outbox rows, atomically.

        Articles and alerts that another replica stored first are skipped by the uniqueness
        constraints; a delivery is only created for an alert this transaction inserted.
        """
        (committed,) = self.record_polls([rec])
        return committed

    def record_polls(self, recs: Sequence[PollRecord]) -> list[CommitResult]:
        """Commit several polls in one transaction, in order: each as ``record_poll`` would.

        One commit instead of one per poll (with SQLite, a commit is most of a small poll's
        write); all of them are stored, or none.
        """
        with self.db.transaction() as tx:
            return [self._record_poll(tx, rec) for rec in recs]

    def _record_poll(self, tx: Tx, rec: PollRecord) -> CommitResult:
        t = rec.polled_at.timestamp()
        self._update_feed(tx, rec)
        n_articles = tx.executemany(
            f"INSERT INTO articles ({rows.ARTICLE_COLUMNS}) VALUES "
            f"({','.join('?' * 19)}) ON CONFLICT DO NOTHING",
            [rows.article_params(a, rec.feed_id) for a in rec.articles],
        )
        inserted = tuple(self._insert_alerts(tx, rec.alerts))
        created = tuple(self._insert_deliveries(tx, rec.deliveries, set(inserted)))
        bucket = t - t % POLL_BUCKET
        tx.execute(
            "INSERT INTO poll_stats (bucket, feed_id, polls, errors, new_articles) "
            "VALUES (?, ?, 1, ?, ?) ON CONFLICT (bucket, feed_id) DO UPDATE SET "
            "polls = poll_stats.polls + 1, errors = poll_stats.errors + excluded.errors, "
            "new_articles = poll_stats.new_articles + excluded.new_articles",
            (bucket, rec.feed_id, 0 if rec.ok else 1, n_articles),
        )
        return CommitResult(articles=n_articles, alerts=inserted, deliveries=created)

    def _update_feed(self, tx: Tx, rec: PollRecord) -> None:
        t = rec.polled_at.timestamp()
        sets = [
            "next_poll_at = ?",
            "last_polled_at = ?",
            "status = ?",
            "lease_owner = NULL",
            "lease_until = NULL",
        ]
        params: list[object] = [rec.next_poll_at.timestamp(), t, rec.status.value]
        if rec.ok:
            sets += ["consecutive_errors = 0", "last_ok_at = ?", "last_error = NULL"]
            params.append(t)
            if not rec.keep_validators:
                sets += ["etag = ?", "last_modified = ?"]
                params += [rec.etag, rec.last_modified]
        else:
            sets += ["consecutive_errors = consecutive_errors + 1", "last_error = ?"]
            sets.append("last_error_at = ?")
            params += [rec.error, t]
        if rec.new_url:
            sets.append("url = ?")
            params.append(rec.new_url)
        if rec.articles:
            sets += ["last_new_at = ?", "avg_new_interval = ?"]
            params += [t, rec.avg_new_interval]
        tx.execute(f"UPDATE feeds SET {', '.join(sets)} WHERE id = ?", (*params, rec.feed_id))
