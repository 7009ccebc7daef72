"""Small interfaces with their contract written once.

``TopicModel`` is what scoring needs from the classifier; ``Channel`` is what delivery needs from
a transport. Each has a real implementation (monitor.classifier, monitor.channels.*) and tests
may pass any object that honours the contract.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable

from monitor.types import Delivery, Receipt

# topic -> {"up": [(term, contribution), ...], "down": [(term, contribution), ...]}
Explanation = dict[str, dict[str, list[tuple[str, float]]]]


@runtime_checkable
class TopicModel(Protocol):
    """A multi-label topic classifier.

    ``predict`` returns, for each text, a calibrated probability in [0, 1] for every topic in
    ``topics``; it must be called with batches (vectorising dominates the cost). ``thresholds``
    are the per-topic decision thresholds chosen on validation data. ``explain`` lists the terms
    that pushed each topic's score up or down the most, largest contribution first.
    """

    @property
    def topics(self) -> tuple[str, ...]: ...

    @property
    def thresholds(self) -> Mapping[str, float]: ...

    def predict(self, texts: Sequence[str]) -> list[dict[str, float]]: ...

    def explain(self, text: str, *, top: int = 8) -> Explanation: ...


@runtime_checkable
class TokenTopicModel(TopicModel, Protocol):
    """A TopicModel that can also score texts already split into words.

    When ``plain_tokens`` is true, the model reads any text for which
    :func:`monitor.text.is_plain` holds exactly as :func:`monitor.text.tokenize` does, so the
    scorer tokenises each field once for the rule matcher and the classifier alike.
    """

    @property
    def plain_tokens(self) -> bool: ...

    def tokens(self, text: str) -> list[str]: ...

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> list[dict[str, float]]: ...


def document_text(title: str, text: str) -> str:
    """The one text a classifier sees for an article (training and scoring alike)."""
    return f"{title}\n{text}" if title else text


class Channel(Protocol):
    """A delivery transport. ``send`` makes exactly one attempt.

    It returns a Receipt on success and raises RetryableDeliveryError (with ``retry_after`` when
    the receiver said so), PermanentDeliveryError or ChannelGoneError otherwise: the channel
    decides whether a failure is worth retrying; the delivery loop only obeys.
    """

    @property
    def name(self) -> str: ...

    async def send(self, delivery: Delivery) -> Receipt: ...

    async def aclose(self) -> None: ...
