"""Versioned schema migrations, one DDL text for both backends.

Placeholders adapt the few type differences: ``{pk}`` an auto-increment integer primary key,
``{blob}`` binary, ``{real}`` a double, ``{bigint}`` a 64-bit integer. Times are stored as UTC
epoch seconds (a double) in both backends, so comparisons and ordering are the same everywhere.
A migration is never edited once released: add a new one.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    ddl: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "feeds, articles, alerts, the delivery outbox, channel states, silences",
        """
        CREATE TABLE feeds (
            id {pk},
            name TEXT NOT NULL UNIQUE,
            url TEXT NOT NULL,
            config_url TEXT NOT NULL,
            interval_s {real} NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',
            status TEXT NOT NULL DEFAULT 'active',
            etag TEXT,
            last_modified TEXT,
            next_poll_at {real} NOT NULL DEFAULT 0,
            consecutive_errors INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            last_error_at {real},
            last_ok_at {real},
            last_new_at {real},
            last_polled_at {real},
            avg_new_interval {real},
            lease_owner TEXT,
            lease_until {real}
        );
        CREATE INDEX feeds_due ON feeds (status, next_poll_at);

        CREATE TABLE articles (
            id TEXT PRIMARY KEY,
            feed_id INTEGER,
            url TEXT NOT NULL,
            title TEXT NOT NULL,
            text TEXT NOT NULL,
            source TEXT NOT NULL,
            feed_url TEXT NOT NULL DEFAULT '',
            published {real} NOT NULL,
            first_seen {real} NOT NULL,
            language TEXT,
            tags TEXT NOT NULL DEFAULT '[]',
            categories TEXT NOT NULL DEFAULT '[]',
            fingerprint TEXT NOT NULL,
            signature {bigint} NOT NULL DEFAULT 0,
            band0 INTEGER NOT NULL DEFAULT 0,
            band1 INTEGER NOT NULL DEFAULT 0,
            band2 INTEGER NOT NULL DEFAULT 0,
            band3 INTEGER NOT NULL DEFAULT 0,
            story_id TEXT NOT NULL
        );
        CREATE INDEX articles_url ON articles (url);
        CREATE INDEX articles_fingerprint ON articles (fingerprint);
        CREATE INDEX articles_band0 ON articles (band0);
        CREATE INDEX articles_band1 ON articles (band1);
        CREATE INDEX articles_band2 ON articles (band2);
        CREATE INDEX articles_band3 ON articles (band3);
        CREATE INDEX articles_first_seen ON articles (first_seen);

        CREATE TABLE alerts (
            id TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            topic TEXT NOT NULL,
            severity TEXT NOT NULL,
            score {real} NOT NULL,
            classifier {real},
            article_id TEXT NOT NULL,
            story_id TEXT NOT NULL,
            evidence TEXT NOT NULL DEFAULT '[]',
            created_at {real} NOT NULL,
            UNIQUE (rule, story_id)
        );
        CREATE INDEX alerts_created ON alerts (created_at);

        CREATE TABLE deliveries (
            seq {pk},
            id TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload {blob} NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at {real} NOT NULL,
            next_attempt_at {real} NOT NULL,
            last_error TEXT,
            last_attempt_at {real},
            delivered_at {real},
            lease_owner TEXT,
            lease_until {real}
        );
        CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
        CREATE INDEX deliveries_channel ON deliveries (channel, state, seq);

        CREATE TABLE delivery_alerts (
            delivery_id TEXT NOT NULL,
            alert_id TEXT NOT NULL,
            PRIMARY KEY (delivery_id, alert_id)
        );
        CREATE INDEX delivery_alerts_alert ON delivery_alerts (alert_id);

        CREATE TABLE channel_states (
            name TEXT PRIMARY KEY,
            status TEXT NOT NULL,
            reason TEXT,
            blocked_until {real},
            updated_at {real} NOT NULL
        );

        CREATE TABLE silences (
            id {pk},
            rule TEXT NOT NULL,
            starts_at {real} NOT NULL,
            ends_at {real} NOT NULL,
            reason TEXT NOT NULL DEFAULT '',
            created_at {real} NOT NULL
        );

        CREATE TABLE poll_stats (
            bucket {real} NOT NULL,
            feed_id INTEGER NOT NULL,
            polls INTEGER NOT NULL DEFAULT 0,
            errors INTEGER NOT NULL DEFAULT 0,
            new_articles INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (bucket, feed_id)
        );
        """,
    ),
)

MIGRATIONS += (
    Migration(
        2,
        "alert suppression (silence, cooldown) and digest grouping",
        """
        ALTER TABLE alerts ADD COLUMN suppressed TEXT;
        ALTER TABLE alerts ADD COLUMN group_pending INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE alerts ADD COLUMN digest_id TEXT;
        CREATE INDEX alerts_rule_created ON alerts (rule, created_at);
        CREATE INDEX alerts_group_pending ON alerts (group_pending, rule)
        """,
    ),
)

MIGRATIONS += (
    Migration(
        3,
        "near-duplicate bands widen from 16 to 31 bits: older signatures no longer compare",
        """
        UPDATE articles SET signature = 0, band0 = 0, band1 = 0, band2 = 0, band3 = 0
        """,
    ),
)

LATEST = MIGRATIONS[-1].version

TYPES = {
    "sqlite": {
        "pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "blob": "BLOB",
        "real": "REAL",
        "bigint": "INTEGER",
    },
    "postgresql": {
        "pk": "BIGSERIAL PRIMARY KEY",
        "blob": "BYTEA",
        "real": "DOUBLE PRECISION",
        "bigint": "BIGINT",
    },
}


def statements(migration: Migration, dialect: str) -> list[str]:
    """The migration's DDL for one dialect, split into single statements."""
    ddl = migration.ddl.format(**TYPES[dialect])
    return [s.strip() for s in ddl.split(";") if s.strip()]
