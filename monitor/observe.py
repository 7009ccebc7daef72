"""Hooks the pipeline calls as things happen; metrics and the dashboard subscribe here.

The base class does nothing, so the pipeline never depends on how it is observed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.pipeline import PollSummary
    from monitor.types import Alert, Delivery, FeedState


class Observer:
    def polled(self, feed: FeedState, summary: PollSummary) -> None:
        """A poll ended (successfully or not)."""

    def alerted(self, alert: Alert) -> None:
        """A new alert was committed."""

    def delivered(self, delivery: Delivery, outcome: str, elapsed: float) -> None:
        """An attempt ended: outcome is delivered, retry, dead or gone."""

    def reloaded(self, ok: bool, detail: str) -> None:
        """Rules or configuration were reloaded (or the new set was refused)."""
