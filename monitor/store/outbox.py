"""The delivery outbox: claims with leases, attempts, channel states, dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from monitor.store import rows
from monitor.store.base import StoreBase, _filters
from monitor.store.db import Tx
from monitor.store.values import (
    ChannelState,
    DeliveryOutcome,
)
from monitor.types import Delivery, DeliveryState


class OutboxStore(StoreBase):
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
