"""The store contract: one suite, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from monitor.config import FeedConfig
from monitor.errors import MigrationError, StoreError
from monitor.store import DeliveryOutcome, PollRecord, Store, open_store, schema
from monitor.types import DeliveryState, FeedStatus

from factories import alert, article, at, delivery


def feeds(*names: str) -> list[FeedConfig]:
    return [FeedConfig(name=n, url=f"https://{n}.example/rss", interval=60.0) for n in names]


def poll(store: Store, feed_id: int, *, when: float = 0, **kw: object) -> object:
    rec = PollRecord(
        feed_id=feed_id, owner="me", polled_at=at(when), next_poll_at=at(when + 60), ok=True, **kw
    )  # type: ignore[arg-type]
    return store.record_poll(rec)


def test_migrating_twice_is_a_no_op(store: Store) -> None:
    assert store.migrate() == store.migrate() == schema.LATEST >= 2


def test_a_schema_newer_than_the_program_is_refused(store_url: str) -> None:
    s = open_store(store_url)
    with s.db.transaction() as tx:
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'x', 'y')"
        )
    s.close()
    with pytest.raises(MigrationError, match="newer than this program"):
        open_store(store_url)


def test_sync_adds_updates_and_disables_feeds(store: Store) -> None:
    store.sync_feeds(feeds("a", "b"), at(0))
    store.sync_feeds(feeds("b", "c"), at(1))
    by_name = {f.name: f for f in store.list_feeds()}
    assert by_name["a"].status is FeedStatus.DISABLED
    assert by_name["b"].status is by_name["c"].status is FeedStatus.ACTIVE


def test_a_due_feed_is_leased_to_one_claimant_until_the_lease_expires(store: Store) -> None:
    store.sync_feeds(feeds("a", "b"), at(0))
    first = store.claim_due_feeds("one", at(0), limit=10, lease=30)
    assert sorted(f.name for f in first) == ["a", "b"]
    assert store.claim_due_feeds("two", at(10), limit=10, lease=30) == []
    again = store.claim_due_feeds("two", at(31), limit=10, lease=30)
    assert sorted(f.name for f in again) == ["a", "b"]


def test_recording_a_poll_releases_the_lease_and_schedules_the_next(store: Store) -> None:
    store.sync_feeds(feeds("a"), at(0))
    (f,) = store.claim_due_feeds("me", at(0), limit=1, lease=30)
    poll(store, f.feed_id, etag='"v1"', last_modified="Sun, 01 Nov 2026 12:00:00 GMT")
    assert store.claim_due_feeds("me", at(59), limit=1, lease=30) == []
    (again,) = store.claim_due_feeds("me", at(60), limit=1, lease=30)
    assert again.etag == '"v1"' and again.last_ok_at == at(0)


def test_a_failed_poll_counts_consecutive_errors_and_keeps_validators(store: Store) -> None:
    store.sync_feeds(feeds("a"), at(0))
    (f,) = store.claim_due_feeds("me", at(0), limit=1, lease=30)
    poll(store, f.feed_id, etag='"v1"')
    for i in (1, 2):
        store.record_poll(
            PollRecord(
                feed_id=f.feed_id,
                owner="me",
                polled_at=at(i),
                next_poll_at=at(i),
                ok=False,
                error="boom",
            )
        )
    (state,) = store.list_feeds()
    assert (state.consecutive_errors, state.last_error, state.etag) == (2, "boom", '"v1"')


def test_an_alert_is_stored_once_per_rule_and_story_with_its_delivery(store: Store) -> None:
    store.sync_feeds(feeds("a"), at(0))
    (f,) = store.claim_due_feeds("me", at(0), limit=1, lease=30)
    a1 = alert(1)
    d1 = delivery(a1.id)
    res = poll(store, f.feed_id, articles=(article(1),), alerts=(a1,), deliveries=(d1,))
    assert res.alerts == (a1.id,) and res.deliveries == (delivery(a1.id).id,)  # type: ignore[attr-defined]
    # the same story through a syndicated copy: new article, same story id -> no second alert
    copy_alert = alert(2, story="art-1")
    res2 = poll(
        store,
        f.feed_id,
        when=1,
        articles=(article(2, story="art-1"),),
        alerts=(copy_alert,),
        deliveries=(delivery(copy_alert.id),),
    )
    assert res2.articles == 1 and res2.alerts == () and res2.deliveries == ()  # type: ignore[attr-defined]
    assert [a.id for a in store.list_alerts()] == [a1.id]
    assert len(store.list_deliveries()) == 1


def test_a_poll_counts_only_the_articles_it_stored(store: Store) -> None:
    # Articles another replica stored first are skipped by the uniqueness constraint, and the
    # count (the poll's result and its statistics) is of the rows inserted.
    store.sync_feeds(feeds("a"), at(0))
    (f,) = store.claim_due_feeds("me", at(0), limit=1, lease=30)
    counts = [
        poll(store, f.feed_id, when=i, articles=tuple(article(n) for n in ns)).articles  # type: ignore[attr-defined]
        for i, ns in enumerate([(1, 2), (2, 3, 4), (1, 4), ()])
    ]
    assert counts == [2, 2, 0, 0]
    assert sum(r["new_articles"] for r in store.poll_stats(at(-3600))) == 4
    assert store.known_article_ids([f"art-{n}" for n in range(6)]) == {
        f"art-{n}" for n in (1, 2, 3, 4)
    }


def test_exact_and_near_duplicate_lookups(store: Store) -> None:
    store.sync_feeds(feeds("a"), at(0))
    (f,) = store.claim_due_feeds("me", at(0), limit=1, lease=30)
    sig = 0x1111_2222_0333_4444_0555_6666_0777_8888  # four 31-bit bands, 32 bits apart
    poll(store, f.feed_id, articles=(article(1, sig=sig),))
    assert store.known_article_ids(["art-1", "art-9"]) == {"art-1"}
    assert store.exact_duplicate("https://news.example/1", "nope") == "art-1"
    assert store.exact_duplicate("https://other/", article(1).fingerprint) == "art-1"
    assert store.exact_duplicate("https://other/", "nope") is None
    near = store.near_candidates(sig ^ 0b111, at(-10))  # three bits off: one band differs
    assert [a.id for a in near] == ["art-1"] and near[0].signature == sig
    every_band = 1 | 1 << 32 | 1 << 64 | 1 << 96
    assert store.near_candidates(sig ^ every_band, at(-10)) == []


def _outbox(store: Store, n: int, channel: str = "hook") -> list[str]:
    store.sync_feeds(feeds("a"), at(0))
    ids = []
    for i in range(n):
        a = alert(i)
        d = delivery(a.id, channel=channel, when=i)
        poll(store, 1, when=i, articles=(article(i),), alerts=(a,), deliveries=(d,))
        ids.append(d.id)
    return ids


def test_due_deliveries_are_claimed_in_creation_order_and_leased(store: Store) -> None:
    ids = _outbox(store, 3)
    claimed = store.claim_due_deliveries("me", at(10), limit=10, lease=60)
    assert [d.id for d in claimed] == ids
    assert claimed[0].alert_ids == ("alr-r1-0",)
    assert store.claim_due_deliveries("other", at(20), limit=10, lease=60) == []


def test_a_blocked_channel_offers_only_its_oldest_delivery(store: Store) -> None:
    ids = _outbox(store, 3)
    store.record_attempt(
        DeliveryOutcome(
            delivery_id=ids[0],
            owner="me",
            at=at(10),
            state=DeliveryState.PENDING,
            error="503",
            next_attempt_at=at(15),
            block_channel=True,
        )
    )
    assert store.claim_due_deliveries("me", at(11), limit=10, lease=1) == []
    probe = store.claim_due_deliveries("me", at(16), limit=10, lease=1)
    assert [d.id for d in probe] == [ids[0]] and probe[0].attempts == 1
    store.record_attempt(
        DeliveryOutcome(delivery_id=ids[0], owner="me", at=at(16), state=DeliveryState.DELIVERED)
    )
    rest = store.claim_due_deliveries("me", at(17), limit=10, lease=1)
    assert [d.id for d in rest] == ids[1:]


def test_dead_deliveries_are_listed_and_replayed_with_the_same_id(store: Store) -> None:
    (d,) = _outbox(store, 1)
    store.record_attempt(
        DeliveryOutcome(
            delivery_id=d, owner="me", at=at(5), state=DeliveryState.DEAD, error="404 Not Found"
        )
    )
    (dead,) = store.list_deliveries(state=DeliveryState.DEAD)
    assert (dead.id, dead.last_error) == (d, "404 Not Found")
    assert store.outbox_summary(at(5))["dead"] == 1
    assert store.retry_deliveries(at(6), all_dead=True) == 1
    (again,) = store.claim_due_deliveries("me", at(6), limit=5, lease=5)
    assert again.id == d and again.state is DeliveryState.PENDING


def test_channel_gone_stops_its_deliveries(store: Store) -> None:
    _outbox(store, 2)
    store.set_channel_status("hook", "gone", "410 from receiver", at(1))
    assert store.claim_due_deliveries("me", at(10), limit=10, lease=5) == []
    assert store.channel_states()["hook"].reason == "410 from receiver"


def test_silences_are_active_within_their_window(store: Store) -> None:
    sid = store.add_silence("r1", at(0), at(100), "maintenance")
    assert [s["id"] for s in store.list_silences(at(50))] == [sid]
    assert store.list_silences(at(100)) == []
    assert store.remove_silence(sid) and not store.remove_silence(sid)


def test_prune_keeps_alerted_articles(store: Store) -> None:
    store.sync_feeds(feeds("a"), at(0))
    a = alert(1)
    poll(store, 1, articles=(article(1), article(2)), alerts=(a,), deliveries=())
    assert store.prune(at(1)) == 1
    assert store.known_article_ids(["art-1", "art-2"]) == {"art-1"}


def test_concurrent_claimants_never_share_a_feed(store_url: str) -> None:
    setup = open_store(store_url)
    setup.sync_feeds(feeds(*[f"f{i}" for i in range(40)]), at(0))
    setup.close()
    got: dict[str, list[str]] = {}

    def claim(owner: str) -> None:
        s = open_store(store_url)
        names: list[str] = []
        for _ in range(20):
            names += [f.name for f in s.claim_due_feeds(owner, at(0), limit=3, lease=60)]
        got[owner] = names
        s.close()

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [n for names in got.values() for n in names]
    assert sorted(everything) == sorted(f"f{i}" for i in range(40))


def test_unreachable_database_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")


def test_suppression_state_reads_silences_and_last_unsuppressed_alerts(store: Store) -> None:
    store.sync_feeds(feeds("a"), at(0))
    quiet = replace(alert(2, rule="r2", when=50), suppressed="cooldown")
    poll(store, 1, articles=(article(1), article(2)), alerts=(alert(1, when=10), quiet))
    store.add_silence("r2", at(0), at(100), "")
    silenced, last = store.suppression_state(["r1", "r2", "r3"], at(60))
    assert silenced == {"r2"}
    assert last == {"r1": at(10)}  # r2's only alert was suppressed: no cooldown starts from it
    assert store.suppression_state(["r2"], at(100))[0] == set()
