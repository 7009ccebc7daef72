"""What the daemon's worker processes run: parsing + normalising, and scoring.

The pipeline sends these functions to a process pool, so a second core does the CPU work of a
poll while the main process fetches, de-duplicates and commits. Everything here is a plain
function of picklable values. The module imports only what parsing needs; the scoring stack
(scikit-learn, the rule compiler) is imported by the daemon's fork server before it forks the
workers (``worker_imports``), and a worker builds its scorer when the pool starts (``warm``).

Scoring in a worker must give exactly what the main process would: a worker rebuilds the scorer
from a ``ScorerSpec`` (the arguments of ``load_scorer`` plus a fingerprint of the rule and model
files' contents as the main process loaded them) and refuses (``Refused(stale=True)``) when the
files it finds on disk are not the ones the main process validated: an edit the main process has
not (or not successfully) reloaded never reaches a worker. The pipeline then scores in the main
process with the rules it holds.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Container, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.errors import MonitorError, ParseError
from monitor.normalize import normalize
from monitor.parse import parse_feed
from monitor.types import Article, FeedState, RuleMatch, Scored

if TYPE_CHECKING:
    from monitor.score import Scorer

LOAD_ATTEMPTS = 3  # a rule file rewritten while the main process loads it: read the set again


def worker_imports(model: str) -> list[str]:
    """The modules a worker needs, for a fork server to import once before forking workers."""
    return ["monitor.workers", "monitor.score"] + (
        ["monitor.classifier"] if model != "none" else []
    )


def exit_with_parent(daemon: int) -> None:
    """Worker start-up: leave when the daemon is gone. A SIGKILLed daemon never shuts its pool
    down, and a blocked worker would otherwise live on as an orphan. The parent is the daemon
    or the fork server it started, which leaves with it."""
    parent = os.getppid()

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def watch() -> None:
        while os.getppid() == parent and (parent == daemon or alive(daemon)):
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def cores() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


# ---------------------------------------------------------------------------- parsing
# A parsed feed: its normalised articles, the parser's warning, the feed's TTL.
Parsed = tuple[list[Article], str | None, float | None]


def parse_and_normalize(
    body: bytes, headers: Mapping[str, str], state: FeedState, fetched_at: datetime
) -> Parsed:
    """CPU stage run off the loop: bytes -> normalised articles (+ warning, feed TTL)."""
    parsed = parse_feed(body, url=state.url, headers=headers)
    articles = [normalize(i, feed=parsed, state=state, fetched_at=fetched_at) for i in parsed.items]
    return articles, parsed.warning, parsed.ttl


def parse_in_worker(
    body: bytes,
    headers: Mapping[str, str],
    state: FeedState,
    fetched_at: datetime,
    spec: ScorerSpec | None = None,
) -> tuple[Parsed, list[Verdict] | Refused | None] | str:
    """``parse_and_normalize`` for a worker process: a ParseError comes back as its reason
    (FeedError's constructor does not survive pickling).

    With a ``spec`` (a feed's first poll, when none of its articles can be stored under it
    yet), the same call scores ``worth_scoring(articles, ())`` too: the articles reach the
    scorer without a round trip through the daemon and a store read first (one that another
    feed brought already is scored in vain, and de-duplication drops it as ever)."""
    try:
        parsed = parse_and_normalize(body, headers, state, fetched_at)
    except ParseError as exc:
        return exc.reason
    if spec is None:
        return parsed, None
    return parsed, score_in_worker(spec, worth_scoring(parsed[0], ()))


def worth_scoring(articles: Sequence[Article], known: Container[str]) -> list[Article]:
    """The articles of a poll worth scoring: not stored yet (``known``: the stored ids among
    theirs), and no URL or content copy of an earlier one of the batch (what de-duplication
    keeps, as far as it can be known before it runs)."""
    urls: set[str] = set()
    prints: set[str] = set()
    out: list[Article] = []
    for a in {a.id: a for a in articles}.values():
        if a.id in known or a.url in urls or a.fingerprint in prints:
            continue
        urls.add(a.url)
        prints.add(a.fingerprint)
        out.append(a)
    return out


# ---------------------------------------------------------------------------- scoring
@dataclass(frozen=True, slots=True, kw_only=True)
class ScorerSpec:
    """How to rebuild the main process's scorer elsewhere: ``load_scorer``'s arguments and the
    fingerprint of the files it read (``generation``)."""

    model: str
    rule_paths: tuple[Path, ...]
    channels: tuple[str, ...] | None
    base_dir: Path | None
    generation: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A worker did not score: ``stale`` when its files differ from the spec's generation,
    else ``reason`` says what failed (exceptions do not all survive pickling)."""

    reason: str
    stale: bool = False


# Per article: the classifier's probabilities and the rules it matched (the article itself is
# not sent back; the main process pairs these with its own copies).
Verdict = tuple[Mapping[str, float], tuple[RuleMatch, ...]]


def _model_path(model: str, base_dir: Path | None) -> Path | None:
    if model == "none":
        return None
    from monitor.classifier import model_path  # scikit-learn loads only with a model

    return model_path(model, base_dir)


def generation(model: str, rule_paths: Iterable[str | Path], base_dir: Path | None) -> str:
    """A fingerprint of the contents of the model file and every rule file ``load_scorer``
    would read (and of their names: a renamed file is another rule)."""
    from monitor.rules import rule_files

    digest = hashlib.blake2b(digest_size=16)

    def add(part: bytes) -> None:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)

    files = [p for p, _ in rule_files(rule_paths)]
    model_path = _model_path(model, base_dir)
    add(model.encode())
    for path in [model_path, *files] if model_path is not None else files:
        add(str(path).encode())
        try:
            add(path.read_bytes())
        except OSError as exc:
            add(f"unreadable: {exc.strerror}".encode())
    return digest.hexdigest()


def load_scorer_spec(
    *,
    model: str,
    rule_paths: Sequence[str | Path],
    channels: Iterable[str] | None,
    base_dir: Path | None = None,
) -> tuple[Scorer, ScorerSpec | None]:
    """``load_scorer`` plus the spec that lets a worker rebuild exactly that scorer.

    The files are fingerprinted before and after loading; when they changed in between, the
    load is repeated. The spec is None if they never held still (the main process then scores
    everything itself).
    """
    from monitor.score import load_scorer

    names = tuple(channels) if channels is not None else None
    paths = tuple(Path(p) for p in rule_paths)
    spec: ScorerSpec | None = None
    for _ in range(LOAD_ATTEMPTS):
        before = generation(model, paths, base_dir)
        scorer = load_scorer(model=model, rule_paths=paths, channels=names, base_dir=base_dir)
        if generation(model, paths, base_dir) == before:
            spec = ScorerSpec(
                model=model, rule_paths=paths, channels=names, base_dir=base_dir, generation=before
            )
            break
    return scorer, spec


# One scorer per worker: the latest spec it was asked for (a reload replaces it).
_loaded: tuple[ScorerSpec, Scorer] | None = None


def _scorer_for(spec: ScorerSpec) -> Scorer | None:
    """The scorer ``spec`` describes, or None when the files on disk are not its generation."""
    global _loaded
    if _loaded is not None and _loaded[0] == spec:
        return _loaded[1]
    from monitor.score import load_scorer

    if generation(spec.model, spec.rule_paths, spec.base_dir) != spec.generation:
        return None  # checked first: loading a model costs far more than reading the files
    _loaded = None  # the old scorer's memory goes before the new one is built
    try:
        scorer = load_scorer(
            model=spec.model,
            rule_paths=spec.rule_paths,
            channels=spec.channels,
            base_dir=spec.base_dir,
        )
    except MonitorError:
        if generation(spec.model, spec.rule_paths, spec.base_dir) != spec.generation:
            return None  # a file changed while loading; the main process holds the good set
        raise
    if generation(spec.model, spec.rule_paths, spec.base_dir) != spec.generation:
        return None
    _loaded = (spec, scorer)
    return scorer


def warm(spec: ScorerSpec | None) -> None:
    """A worker's first job: build the scorer now rather than when the first article comes."""
    if spec is not None:
        score_in_worker(spec, [])


def start_workers(pool: Executor, n: int, spec: ScorerSpec | None) -> None:
    """Start ``n`` workers and let them load the scorer; blocks until they have (starting a
    worker waits for the fork server to import the worker code, a few seconds the first time)."""
    for job in [pool.submit(warm, spec) for _ in range(n)]:
        job.result()


# The spec a worker could not build a scorer for, and why: it is not retried for every batch
# (loading takes a second); a reload brings another spec.
_failed: tuple[ScorerSpec, str] | None = None


def score_in_worker(spec: ScorerSpec, articles: Sequence[Article]) -> list[Verdict] | Refused:
    """``Scorer.score`` in a worker process, with the rules ``spec`` names and no others."""
    global _failed
    if _failed is not None and _failed[0] == spec:
        return Refused(_failed[1])
    try:
        scorer = _scorer_for(spec)
        if scorer is None:
            return Refused("the rule or model files changed since the daemon loaded them", True)
        return [(s.topics, s.matches) for s in scorer.score(articles)]
    except Exception as exc:  # the main process scores instead; it must learn why
        _failed = (spec, f"{type(exc).__name__}: {exc}")
        return Refused(_failed[1])


def rejoin(articles: Sequence[Article], verdicts: Sequence[Verdict]) -> list[Scored]:
    """Worker verdicts paired with the main process's articles: what ``Scorer.score`` returns."""
    return [
        Scored(article=a, topics=topics, matches=matches)
        for a, (topics, matches) in zip(articles, verdicts, strict=True)
    ]
