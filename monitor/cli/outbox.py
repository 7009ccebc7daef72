"""Commands that read and repair stored state: feeds, alerts, deliveries, silences, channels."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import orjson

from monitor.cli.options import config_option
from monitor.config import load_config, parse_duration
from monitor.polling import is_stale
from monitor.store import Store, open_store
from monitor.types import DeliveryState, FeedStatus


@contextmanager
def _store(config_path: Path) -> Iterator[tuple[Store, Any]]:
    config = load_config(config_path)
    store = open_store(config.storage_url)
    try:
        yield store, config
    finally:
        store.close()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def _emit(rows: list[dict[str, Any]], as_json: bool, columns: list[str]) -> None:
    if as_json:
        for r in rows:
            click.echo(orjson.dumps(r, default=str).decode())
        return
    if not rows:
        click.echo("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c) or "")) for r in rows)) for c in columns}
    widths = {c: min(w, 60) for c, w in widths.items()}
    click.echo("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for r in rows:
        click.echo("  ".join(str(r.get(c) or "")[: widths[c]].ljust(widths[c]) for c in columns))


def feed_health(store: Store, now: datetime, stale_after: float) -> list[dict[str, Any]]:
    out = []
    for f in store.list_feeds():
        if f.status is not FeedStatus.ACTIVE:
            health = f.status.value
        elif f.consecutive_errors:
            health = "failing"
        elif is_stale(f, now, stale_after):
            health = "stale"
        elif f.last_ok_at is None:
            health = "new"
        else:
            health = "ok"
        out.append(
            {
                "name": f.name,
                "url": f.url,
                "health": health,
                "status": f.status.value,
                "errors": f.consecutive_errors,
                "last_error": f.last_error,
                "last_ok": _iso(f.last_ok_at),
                "last_new": _iso(f.last_new_at),
                "next_poll": _iso(f.next_poll_at),
            }
        )
    return out


@click.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def feeds_list(config_path: Path, as_json: bool) -> None:
    """Every feed's state: health, errors, last success, next poll."""
    with _store(config_path) as (store, config):
        rows = feed_health(store, datetime.now(UTC), config.fetch.stale_after)
    _emit(
        rows,
        as_json,
        ["name", "health", "errors", "last_ok", "last_new", "next_poll", "last_error"],
    )


@click.command("enable")
@config_option
@click.argument("name")
def feeds_enable(config_path: Path, name: str) -> None:
    """Re-enable a feed that was disabled after 410 Gone (polled at once)."""
    with _store(config_path) as (store, _):
        if not store.set_feed_status(name, FeedStatus.ACTIVE):
            raise click.ClickException(f"no feed named {name!r}")
    click.echo(f"feed {name} enabled")


@click.group("alerts")
def alerts_group() -> None:
    """Stored alerts."""


@alerts_group.command("list")
@config_option
@click.option("--limit", default=50, show_default=True)
@click.option("--rule", default=None, help="Only this rule's alerts.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def alerts_list(config_path: Path, limit: int, rule: str | None, as_json: bool) -> None:
    """The most recent alerts, newest first."""
    with _store(config_path) as (store, _):
        alerts = store.list_alerts(limit=limit, rule=rule)
        articles = store.get_articles(a.article_id for a in alerts)
    rows = []
    for a in alerts:
        art = articles.get(a.article_id)
        rows.append(
            {
                "id": a.id,
                "created_at": _iso(a.created_at),
                "rule": a.rule,
                "topic": a.topic,
                "severity": a.severity,
                "score": round(a.score, 3),
                "title": art.title if art else None,
                "url": art.url if art else None,
                "evidence": sorted({h.term for h in a.evidence}),
            }
        )
    _emit(rows, as_json, ["created_at", "rule", "severity", "score", "title"])


@click.group("deliveries")
def deliveries_group() -> None:
    """The delivery outbox."""


@deliveries_group.command("list")
@config_option
@click.option("--state", type=click.Choice([s.value for s in DeliveryState]), default=None)
@click.option("--channel", default=None)
@click.option("--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def deliveries_list(
    config_path: Path, state: str | None, channel: str | None, limit: int, as_json: bool
) -> None:
    """Deliveries, newest first (``--state dead`` for the dead letters)."""
    with _store(config_path) as (store, _):
        found = store.list_deliveries(
            state=DeliveryState(state) if state else None, channel=channel, limit=limit
        )
    rows = [
        {
            "id": d.id,
            "channel": d.channel,
            "kind": d.kind,
            "state": d.state.value,
            "attempts": d.attempts,
            "created_at": _iso(d.created_at),
            "next_attempt_at": _iso(d.next_attempt_at)
            if d.state is DeliveryState.PENDING
            else None,
            "delivered_at": _iso(d.delivered_at),
            "last_error": d.last_error,
            "alerts": list(d.alert_ids),
        }
        for d in found
    ]
    _emit(rows, as_json, ["id", "channel", "state", "attempts", "created_at", "last_error"])


@deliveries_group.command("retry")
@config_option
@click.argument("ids", nargs=-1)
@click.option("--dead", is_flag=True, help="Retry every dead delivery.")
def deliveries_retry(config_path: Path, ids: tuple[str, ...], dead: bool) -> None:
    """Send deliveries again now, under their original ids."""
    if not ids and not dead:
        raise click.UsageError("give delivery ids or --dead")
    with _store(config_path) as (store, _):
        n = store.retry_deliveries(datetime.now(UTC), ids=ids, all_dead=dead)
    click.echo(f"{n} deliveries queued for another attempt")


@click.group("silence")
def silence_group() -> None:
    """Mute a rule's deliveries for a while (alerts are still recorded)."""


@silence_group.command("add")
@config_option
@click.option("--rule", required=True, help="Rule id (file stem).")
@click.option("--for", "duration", required=True, help="How long, e.g. 30m, 6h, 2d.")
@click.option("--reason", default="", help="Why, for whoever reads `silence list`.")
def silence_add(config_path: Path, rule: str, duration: str, reason: str) -> None:
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--for") from None
    now = datetime.now(UTC)
    with _store(config_path) as (store, _):
        sid = store.add_silence(rule, now, now + timedelta(seconds=seconds), reason)
    click.echo(f"silence {sid}: rule {rule} until {_iso(now + timedelta(seconds=seconds))}")


@silence_group.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Include expired silences.")
@click.option("--json", "as_json", is_flag=True)
def silence_list(config_path: Path, show_all: bool, as_json: bool) -> None:
    with _store(config_path) as (store, _):
        found = store.list_silences(None if show_all else datetime.now(UTC))
    rows = [{**s, "starts_at": _iso(s["starts_at"]), "ends_at": _iso(s["ends_at"])} for s in found]
    _emit(rows, as_json, ["id", "rule", "starts_at", "ends_at", "reason"])


@silence_group.command("remove")
@config_option
@click.argument("silence_id", type=int)
def silence_remove(config_path: Path, silence_id: int) -> None:
    with _store(config_path) as (store, _):
        if not store.remove_silence(silence_id):
            raise click.ClickException(f"no silence {silence_id}")
    click.echo(f"silence {silence_id} removed")


@click.command("enable")
@config_option
@click.argument("name")
def channels_enable(config_path: Path, name: str) -> None:
    """Re-enable a channel disabled after its receiver answered 410 Gone."""
    with _store(config_path) as (store, _):
        store.set_channel_status(name, "active", None, datetime.now(UTC))
    click.echo(f"channel {name} enabled; its pending deliveries will be sent")


def _group(cli: click.Group, name: str, help_text: str) -> click.Group:
    group = cli.commands.get(name)
    if not isinstance(group, click.Group):
        group = click.Group(name, help=help_text)
        cli.add_command(group)
    return group


def register(cli: click.Group) -> None:
    for cmd in (alerts_group, deliveries_group, silence_group):
        cli.add_command(cmd)
    feeds = _group(cli, "feeds", "Feeds: state, import and export.")
    feeds.add_command(feeds_list)
    feeds.add_command(feeds_enable)
    _group(cli, "channels", "Delivery channels.").add_command(channels_enable)
