"""The long-running service: wiring, lifecycle, reloads.

``Daemon.run()`` opens the store, validates rules and config (refusing to start on a bad set),
then ticks: poll due feeds, deliver due outbox rows, prune old articles, watch rule and config
files. SIGTERM/SIGINT drain in-flight work within a deadline; SIGHUP (or a changed file) reloads
rules and configuration atomically: a bad new set is refused and the old one keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from monitor import build
from monitor.channels import build_channel
from monitor.config import Config, load_config
from monitor.errors import MonitorError
from monitor.fetch import make_client
from monitor.interfaces import Channel
from monitor.observe import Observer
from monitor.pipeline import Pipeline
from monitor.scheduler import Tick, Ticker
from monitor.score import Scorer, load_scorer
from monitor.store import Store, open_store
from monitor.workers import ScorerSpec, cores, exit_with_parent, load_scorer_spec, worker_imports

if TYPE_CHECKING:
    from monitor.admin import AdminServer

log = logging.getLogger("monitor.daemon")

STOP_DEADLINE = 8.0  # seconds given to in-flight work on SIGTERM (systemd waits 10 s by default)


def build_scorer(config: Config) -> Scorer:
    """The classifier and rule files named by the configuration (raises on errors)."""
    return load_scorer(
        model=config.classifier.model,
        rule_paths=config.rule_paths,
        channels=[c.name for c in config.channels],
        base_dir=config.base_dir,
    )


def scorer_and_spec(config: Config) -> tuple[Scorer, ScorerSpec | None]:
    """``build_scorer``, plus the spec from which worker processes rebuild the same scorer."""
    return load_scorer_spec(
        model=config.classifier.model,
        rule_paths=config.rule_paths,
        channels=[c.name for c in config.channels],
        base_dir=config.base_dir,
    )


def parser_pool(model: str) -> ProcessPoolExecutor | None:
    """Worker processes for parsing and scoring (monitor/workers.py), one per core; None on a
    single core (threads do then). Workers start on first use.

    Not forked from the daemon: it has threads (store, admin) by then, and a forked child would
    inherit their locks in whatever state they were. A fork server (a fresh, single-threaded
    process) imports the worker code and, with a classifier, scikit-learn once, and each worker
    is forked from it with that done: spawning each worker cost a second or two of imports
    apiece, at the start of every cycle. Spawned where there is no fork server.
    """
    n = cores()
    if n < 2:
        return None
    ctx: BaseContext = multiprocessing.get_context("spawn")
    if "forkserver" in multiprocessing.get_all_start_methods():
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload(worker_imports(model))
        ctx = server
    return ProcessPoolExecutor(
        max_workers=n, mp_context=ctx, initializer=exit_with_parent, initargs=(os.getpid(),)
    )


def owner_id() -> str:
    """Who holds a lease: host, process and a random part (a restarted process is new)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _watched(config: Config) -> dict[Path, float]:
    """A fingerprint (mtime and size) of every file a reload would read."""
    files = [config.path]
    for p in config.rule_paths:
        files += sorted(p.rglob("*.y*ml")) if p.is_dir() else [p]
    stamps: dict[Path, float] = {}
    for f in files:
        try:
            st = f.stat()
            stamps[f] = st.st_mtime_ns + st.st_size
        except OSError:
            stamps[f] = -1.0
    return stamps


class Daemon:
    def __init__(
        self,
        config_path: Path,
        *,
        observer: Observer | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config_path = config_path
        self.observer = observer or Observer()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.stopping = asyncio.Event()
        self.ready = asyncio.Event()
        self.config: Config = load_config(config_path)
        # The rules in force, and how the worker processes rebuild exactly these; a reload
        # replaces both at once, and a worker picks the new ones up with its next batch.
        self.scorer, self.scorer_spec = scorer_and_spec(self.config)
        self.store: Store | None = None
        self.pipeline: Pipeline | None = None
        self.ticker: Ticker | None = None
        self._stamps: dict[Path, float] = _watched(self.config)
        self._feed_client: httpx.AsyncClient | None = None
        self._hook_client: httpx.AsyncClient | None = None
        self._channels: dict[str, Channel] = {}
        self.admin: AdminServer | None = None
        self._parser: ProcessPoolExecutor | None = None
        self._delivering: asyncio.Task[None] | None = None
        self._kicks = 0
        self._once = False  # in run_once: deliveries start while polling goes on
        self._attempted = 0  # delivery attempts made by _deliver_now

    # ------------------------------------------------------------------ set-up
    def _open(self) -> Pipeline:
        cfg = self.config
        self.store = open_store(cfg.storage_url)
        self.store.sync_feeds(cfg.feeds, self.clock())
        self._feed_client = make_client(cfg.fetch)
        self._hook_client = httpx.AsyncClient(follow_redirects=False)
        self._channels = self._build_channels(cfg)
        self._parser = parser_pool(cfg.classifier.model)
        self.pipeline = Pipeline(
            config=cfg,
            store=self.store,
            scorer=lambda: self.scorer,
            scorer_spec=lambda: self.scorer_spec,
            client=self._feed_client,
            channels=self._channels,
            owner=owner_id(),
            clock=self.clock,
            observer=self.observer,
            parser=self._parser,
            on_outbox=self._deliver_soon,
        )
        for rule in self.scorer.rules.rules:
            if not rule.channels and not cfg.routes.default:
                log.warning(
                    "rule has no channels and [routes] default is empty: its alerts are stored "
                    "but not delivered",
                    extra={"rule": rule.id},
                )
        return self.pipeline

    def _build_channels(self, cfg: Config) -> dict[str, Channel]:
        return {
            c.name: build_channel(c, client=self._hook_client, default_timeout=cfg.delivery.timeout)
            for c in cfg.channels
        }

    async def _close(self) -> None:
        for ch in self._channels.values():
            await ch.aclose()
        for client in (self._feed_client, self._hook_client):
            if client is not None:
                await client.aclose()
        if self.pipeline is not None:
            self.pipeline.close()
        if self._parser is not None:
            self._parser.shutdown(wait=True, cancel_futures=True)
            self._parser = None
        if self.store is not None:
            self.store.close()

    # ------------------------------------------------------------------ modes
    async def run_once(self) -> dict[str, int]:
        """Poll every active feed once, then attempt every delivery that is due.

        Alerts go out while the other feeds are still being polled (as in the daemon), and
        whatever is due at the end is sent before returning."""
        pipeline = self._open()
        self._once = True
        try:
            summaries = await pipeline.poll_due(everything=True, limit=1_000_000)
            if self._delivering is not None:
                await self._delivering
            await pipeline.flush_groups()
            attempted = self._attempted
            while not self.stopping.is_set():
                n = await pipeline.deliver_due()
                attempted += n
                if n == 0:
                    break
            return {
                "feeds": len(summaries),
                "failed": sum(not s.ok for s in summaries),
                "new_articles": sum(s.new_articles for s in summaries),
                "alerts": sum(s.alerts for s in summaries),
                "attempts": attempted,
            }
        finally:
            await self._close()

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT; reload on SIGHUP or when a watched file changes."""
        pipeline = self._open()
        # Now, not with the first new item: its alert would wait for the workers' start-up.
        # (run_once starts them with its first parse: a cycle of 304s needs none.)
        pipeline.start_workers()
        from monitor.admin import start_admin

        try:
            self.admin = await start_admin(self)
        except BaseException:
            await self._close()
            raise
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        cfg = self.config
        self.ticker = Ticker(
            [
                Tick(name="poll", every=1.0, run=pipeline.poll_due),
                Tick(name="deliver", every=cfg.delivery.poll, run=pipeline.deliver_due),
                Tick(name="digest", every=5.0, run=pipeline.flush_groups),
                Tick(name="prune", every=3600.0, run=self._prune),
                *(
                    [Tick(name="watch", every=2.0, run=self._watch, immediately=False)]
                    if cfg.rules.watch
                    else []
                ),
                Tick(name="watchdog", every=_watchdog_interval(), run=self._watchdog),
            ]
        )
        self.ticker.start()
        self.ready.set()
        _sd_notify("READY=1")
        compiled = build.compiled()
        log.info(
            "started: %d feeds, %d rules, %d channels; matcher %s",
            len(cfg.feeds),
            len(self.scorer.rules.rules),
            len(cfg.channels),
            "compiled" if all(compiled.values()) else "pure Python (not compiled: slower)",
            extra={"event": "start", "compiled": compiled},
        )
        if stale := build.stale():
            log.warning(
                "compiled module(s) older than their source, which is not what runs: %s; "
                "re-install the project",
                ", ".join(stale),
                extra={"event": "stale-build"},
            )
        try:
            await self.stopping.wait()
        finally:
            _sd_notify("STOPPING=1")
            clean = await self.ticker.stop(STOP_DEADLINE)
            if self._delivering is not None:
                # The round in flight finishes (or is abandoned: unrecorded sends are retried).
                _, late = await asyncio.wait({self._delivering}, timeout=2.0)
                for task in late:
                    task.cancel()
            if self.admin is not None:
                await self.admin.stop()
            log.info(
                "stopped" if clean else "stopped; unfinished work will be retried",
                extra={"event": "stop"},
            )
            await self._close()

    def stop(self) -> None:
        self.stopping.set()

    def _deliver_soon(self) -> None:
        """A poll queued deliveries: send them now (the outbox tick stays as the safety net)."""
        if (self.ticker is None and not self._once) or self.stopping.is_set():
            return
        self._kicks += 1
        if self._delivering is None or self._delivering.done():
            self._delivering = asyncio.ensure_future(self._deliver_now())

    async def _deliver_now(self) -> None:
        assert self.pipeline is not None
        try:
            while self._kicks and not self.stopping.is_set():
                self._kicks = 0
                while not self.stopping.is_set():
                    n = await self.pipeline.deliver_due()
                    self._attempted += n
                    if not n:
                        break
        except Exception:  # like a failed tick: logged, and the outbox tick retries
            log.exception("immediate delivery failed", extra={"event": "deliver"})

    # ------------------------------------------------------------------ periodic work
    async def _prune(self) -> None:
        assert self.pipeline is not None and self.store is not None
        cutoff = self.clock() - timedelta(seconds=self.config.storage.retention)
        n = await self.pipeline.db(self.store.prune, cutoff)
        if n:
            log.info("pruned %d old articles", n, extra={"event": "prune"})

    async def _watch(self) -> None:
        stamps = _watched(self.config)
        if stamps != self._stamps:
            self._stamps = stamps
            await self.reload("file change")

    async def _watchdog(self) -> None:
        _sd_notify("WATCHDOG=1")

    async def reload(self, why: str) -> bool:
        """Swap in a new configuration and rule set, all or nothing."""
        try:
            config = load_config(self.config_path)
            scorer, spec = scorer_and_spec(config)
        except MonitorError as exc:
            log.error(
                "reload refused (%s); the previous rules and configuration stay in force: %s",
                why,
                exc,
                extra={"event": "reload"},
            )
            self.observer.reloaded(False, str(exc))
            return False
        old_channels = self._channels
        self.config, self.scorer, self.scorer_spec = config, scorer, spec
        self._stamps = _watched(config)
        if self.pipeline is not None and self.store is not None:
            await self.pipeline.db(self.store.sync_feeds, config.feeds, self.clock())
            self._channels = self._build_channels(config)
            self.pipeline.config = config
            self.pipeline.channels = self._channels
            for ch in old_channels.values():
                await ch.aclose()
        log.info("reloaded (%s): %d rules", why, len(scorer.rules.rules), extra={"event": "reload"})
        self.observer.reloaded(True, why)
        return True


def _watchdog_interval() -> float:
    usec = os.environ.get("WATCHDOG_USEC")
    return max(1.0, int(usec) / 2e6) if usec and usec.isdigit() else 3600.0


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) about our state: a datagram to $NOTIFY_SOCKET, if set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
