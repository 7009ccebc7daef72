"""The store: the source of truth. Memory is only a cache.

One interface, two backends (SQLite, PostgreSQL) sharing the same SQL. Every public method is one
committed transaction. Due feeds and due deliveries are *claimed* with leases, so several daemon
replicas can share one PostgreSQL database; the single-node path is the same code. Uniqueness
constraints (article id, alert per rule and story, delivery id) make duplicates impossible even
when two replicas race.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor.config import FeedConfig
from monitor.store import rows
from monitor.store.db import Database, Row, Tx, open_database, redact
from monitor.types import Alert, Article, Delivery, DeliveryState, FeedState, FeedStatus

__all__ = ["ChannelState", "DedupeView", "DeliveryOutcome", "PollRecord", "Store", "open_store"]

_POLL_BUCKET = 3600.0  # poll statistics are kept per hour, for the dashboard's charts


@dataclass(frozen=True, slots=True, kw_only=True)
class PollRecord:
    """Everything one poll of one feed changes, committed together."""

    feed_id: int
    owner: str
    polled_at: datetime
    next_poll_at: datetime
    ok: bool
    error: str | None = None
    status: FeedStatus = FeedStatus.ACTIVE
    etag: str | None = None
    last_modified: str | None = None
    keep_validators: bool = False  # a 304 or an error keeps the stored validators
    new_url: str | None = None  # after a permanent redirect
    avg_new_interval: float | None = None
    articles: tuple[Article, ...] = ()
    alerts: tuple[Alert, ...] = ()
    deliveries: tuple[Delivery, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryOutcome:
    """The result of one attempt, as the delivery loop records it."""

    delivery_id: str
    owner: str
    at: datetime
    state: DeliveryState  # DELIVERED, PENDING (retry at next_attempt_at) or DEAD
    error: str | None = None
    next_attempt_at: datetime | None = None
    # A retryable failure blocks the channel: until this delivery succeeds or dies, only the
    # channel's oldest pending delivery is offered, so a receiver that comes back gets
    # everything in creation order.
    block_channel: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelState:
    name: str
    status: str  # "active" | "gone"
    reason: str | None
    blocked_until: datetime | None
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitResult:
    articles: int = 0
    alerts: tuple[str, ...] = field(default_factory=tuple)
    deliveries: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True, kw_only=True)
class DedupeView:
    """What the store already holds that bears on a batch of new articles."""

    known: frozenset[str]  # article ids already stored
    urls: frozenset[str]  # canonical URLs of the batch that are already stored
    fingerprints: frozenset[str]  # content fingerprints of the batch already stored
    near: Mapping[str, tuple[Article, ...]]  # article id -> stored near-duplicate candidates

    def exact(self, a: Article) -> bool:
        return a.url in self.urls or a.fingerprint in self.fingerprints


class Store:
    """All reads and writes of persistent state."""

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
        with self.db.transaction() as tx:
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
        with self.db.transaction() as tx:
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
        t = rec.polled_at.timestamp()
        with self.db.transaction() as tx:
            self._update_feed(tx, rec)
            n_articles = 0
            for a in rec.articles:
                n_articles += tx.execute(
                    f"INSERT INTO articles ({rows.ARTICLE_COLUMNS}) VALUES "
                    f"({','.join('?' * 19)}) ON CONFLICT DO NOTHING",
                    rows.article_params(a, rec.feed_id),
                )
            inserted = tuple(self._insert_alerts(tx, rec.alerts))
            created = tuple(self._insert_deliveries(tx, rec.deliveries, set(inserted)))
            bucket = t - t % _POLL_BUCKET
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

    def add_deliveries(self, deliveries: Sequence[Delivery]) -> tuple[str, ...]:
        """Add outbox rows outside a poll (digests, test events)."""
        with self.db.transaction() as tx:
            return tuple(self._insert_deliveries(tx, deliveries, None))

    # ---------------------------------------------------------------- the outbox
    def claim_due_deliveries(
        self, owner: str, now: datetime, *, limit: int, lease: float
    ) -> list[Delivery]:
        """Lease due pending deliveries in creation order, skipping channels that are blocked
        (backing off behind an earlier failed delivery: only their oldest pending delivery is
        offered, when due, as the probe that unblocks them) or gone."""
        t = now.timestamp()
        with self.db.transaction() as tx:
            states = {r["name"]: r for r in tx.all("SELECT * FROM channel_states")}
            due = tx.all(
                "SELECT seq, id, channel FROM deliveries WHERE state = 'pending' "
                "AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) "
                "ORDER BY seq LIMIT ?" + self._skip_locked(),
                (t, t, limit * 4),
            )
            heads: dict[str, int] = {}
            picked: list[str] = []
            for r in due:
                st = states.get(r["channel"])
                if st is not None and st["status"] == "gone":
                    continue
                blocked = st is not None and st["blocked_until"] is not None
                if blocked:
                    if r["channel"] not in heads:
                        head = tx.one(
                            "SELECT MIN(seq) AS s FROM deliveries WHERE channel = ? "
                            "AND state = 'pending'",
                            (r["channel"],),
                        )
                        heads[r["channel"]] = int(head["s"]) if head and head["s"] else -1
                    if r["seq"] != heads[r["channel"]]:
                        continue
                picked.append(r["id"])
                if len(picked) >= limit:
                    break
            if not picked:
                return []
            marks = ",".join("?" * len(picked))
            tx.execute(
                f"UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN ({marks})",
                (owner, t + lease, *picked),
            )
            found = tx.all(f"SELECT * FROM deliveries WHERE id IN ({marks}) ORDER BY seq", picked)
            links = self._alert_links(tx, picked)
        return [rows.delivery(r, links.get(r["id"], ())) for r in found]

    def _alert_links(self, tx: Tx, ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        out: dict[str, list[str]] = {}
        for r in tx.all(
            f"SELECT delivery_id, alert_id FROM delivery_alerts WHERE delivery_id IN ({marks}) "
            "ORDER BY alert_id",
            list(ids),
        ):
            out.setdefault(r["delivery_id"], []).append(r["alert_id"])
        return {k: tuple(v) for k, v in out.items()}

    def record_attempt(self, out: DeliveryOutcome) -> None:
        with self.db.transaction() as tx:
            self._record_attempt(tx, out)

    def record_attempts(self, outcomes: Sequence[DeliveryOutcome]) -> None:
        """Several outcomes, in order, in one transaction (a round's successes)."""
        with self.db.transaction() as tx:
            for out in outcomes:
                self._record_attempt(tx, out)

    def _record_attempt(self, tx: Tx, out: DeliveryOutcome) -> None:
        t = out.at.timestamp()
        row = tx.one("SELECT channel FROM deliveries WHERE id = ?", (out.delivery_id,))
        if row is None:
            return
        nxt = out.next_attempt_at.timestamp() if out.next_attempt_at else None
        tx.execute(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_attempt_at = ?, "
            "last_error = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
            "delivered_at = ?, lease_owner = NULL, lease_until = NULL WHERE id = ?",
            (
                out.state.value,
                t,
                out.error,
                nxt,
                t if out.state is DeliveryState.DELIVERED else None,
                out.delivery_id,
            ),
        )
        blocked = nxt if out.block_channel and nxt is not None else None
        self._upsert_channel(tx, row["channel"], None, None, blocked, t)

    def release_delivery(self, delivery_id: str, owner: str) -> None:
        """Give a claimed delivery back untouched (it stays due)."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL "
                "WHERE id = ? AND lease_owner = ?",
                (delivery_id, owner),
            )

    def _upsert_channel(
        self,
        tx: Tx,
        name: str,
        status: str | None,
        reason: str | None,
        blocked: float | None,
        t: float,
    ) -> None:
        row = tx.one("SELECT status, reason FROM channel_states WHERE name = ?", (name,))
        if row is None:
            tx.execute(
                "INSERT INTO channel_states (name, status, reason, blocked_until, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING",
                (name, status or "active", reason, blocked, t),
            )
            return
        tx.execute(
            "UPDATE channel_states SET status = ?, reason = ?, blocked_until = ?, updated_at = ? "
            "WHERE name = ?",
            (status or row["status"], reason if status else row["reason"], blocked, t, name),
        )

    def set_channel_status(self, name: str, status: str, reason: str | None, now: datetime) -> None:
        with self.db.transaction() as tx:
            self._upsert_channel(tx, name, status, reason, None, now.timestamp())

    def channel_states(self) -> dict[str, ChannelState]:
        with self.db.transaction() as tx:
            found = tx.all("SELECT * FROM channel_states ORDER BY name")
        return {
            r["name"]: ChannelState(
                name=r["name"],
                status=r["status"],
                reason=r["reason"],
                blocked_until=rows.dt(r["blocked_until"]),
                updated_at=rows.must_dt(r["updated_at"]),
            )
            for r in found
        }

    def list_deliveries(
        self, *, state: DeliveryState | None = None, channel: str | None = None, limit: int = 100
    ) -> list[Delivery]:
        where, params = _filters(("state", state and state.value), ("channel", channel))
        with self.db.transaction() as tx:
            found = tx.all(
                f"SELECT * FROM deliveries{where} ORDER BY seq DESC LIMIT ?", (*params, limit)
            )
            links = self._alert_links(tx, [r["id"] for r in found])
        return [rows.delivery(r, links.get(r["id"], ())) for r in found]

    def retry_deliveries(
        self, now: datetime, *, ids: Sequence[str] = (), all_dead: bool = False
    ) -> int:
        """Put dead (or pending) deliveries back to pending, due now, same ids."""
        t = now.timestamp()
        with self.db.transaction() as tx:
            if all_dead:
                return tx.execute(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, "
                    "attempts = 0 WHERE state = 'dead'",
                    (t,),
                )
            n = 0
            for i in ids:
                n += tx.execute(
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, attempts = 0 "
                    "WHERE id = ? AND state <> 'delivered'",
                    (t, i),
                )
            return n

    def outbox_summary(self, now: datetime) -> dict[str, float]:
        """Counts by state and the age in seconds of the oldest pending delivery."""
        with self.db.transaction() as tx:
            out: dict[str, float] = {s.value: 0.0 for s in DeliveryState}
            for r in tx.all("SELECT state, COUNT(*) AS n FROM deliveries GROUP BY state"):
                out[r["state"]] = float(r["n"])
            row = tx.one("SELECT MIN(created_at) AS t FROM deliveries WHERE state = 'pending'")
        oldest = row["t"] if row else None
        out["oldest_pending_age"] = 0.0 if oldest is None else max(0.0, now.timestamp() - oldest)
        return out

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

    def last_alert_times(self, rules: Iterable[str]) -> dict[str, datetime]:
        """When each rule last raised an alert that was not suppressed (for cooldowns)."""
        wanted = sorted(set(rules))
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        with self.db.transaction() as tx:
            found = tx.all(
                f"SELECT rule, MAX(created_at) AS t FROM alerts WHERE rule IN ({marks}) "
                "AND suppressed IS NULL GROUP BY rule",
                wanted,
            )
        return {r["rule"]: rows.must_dt(r["t"]) for r in found if r["t"] is not None}

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

    def alert_counts(self, since: datetime, bucket: float = _POLL_BUCKET) -> list[Row]:
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


def _filters(*pairs: tuple[str, object]) -> tuple[str, list[object]]:
    clauses = [f"{col} = ?" for col, val in pairs if val is not None]
    params = [val for _, val in pairs if val is not None]
    return (" WHERE " + " AND ".join(clauses) if clauses else "", params)


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
