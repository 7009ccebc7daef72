"""The admin HTTP endpoint (aiohttp, the only module that imports it): health, metrics, dashboard.

    GET /healthz  200 "ok" while the process serves requests (liveness; never needs a token)
    GET /readyz   200 when the store answers, rules are loaded and the scheduler runs; else 503
                  with a JSON body naming what is not ready
    GET /metrics  Prometheus text format (monitor.metrics)
    GET /         the dashboard (monitor.dashboard), refreshed by the browser every 30 s

It listens on ``[admin] listen`` (loopback by default). A bearer token is required on every path
but /healthz when the endpoint listens beyond loopback, and whenever one is configured. Store
calls run on the admin's own small thread pool, with deadlines, so a stuck database makes
/readyz answer 503 instead of hanging, and never blocks the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from monitor.config import AdminConfig, Config
from monitor.errors import ConfigError
from monitor.metrics import CONTENT_TYPE, Metrics, StoreCollector
from monitor.observe import Observer

if TYPE_CHECKING:
    from monitor.scheduler import Ticker
    from monitor.score import Scorer
    from monitor.store import Store

log = logging.getLogger("monitor.admin")
T = TypeVar("T")

PING_TIMEOUT = 2.0  # seconds a readiness probe waits for the store
PAGE_TIMEOUT = 10.0  # seconds the dashboard or a scrape waits for the store
OPEN_PATHS = frozenset({"/healthz"})  # answered without a token: liveness probes carry none
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Service(Protocol):
    """What the admin endpoint reads from the daemon (``monitor.daemon.Daemon`` has it all)."""

    @property
    def config(self) -> Config: ...
    @property
    def store(self) -> Store | None: ...
    @property
    def scorer(self) -> Scorer: ...
    @property
    def ticker(self) -> Ticker | None: ...
    @property
    def stopping(self) -> asyncio.Event: ...
    @property
    def observer(self) -> Observer: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...


def is_loopback(host: str) -> bool:
    """Only the usual loopback names count; any other address needs a token."""
    return host.strip("[]") in LOOPBACK_HOSTS


def token_ok(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


SERVICE: web.AppKey[Service] = web.AppKey("service", Service)
POOL: web.AppKey[ThreadPoolExecutor] = web.AppKey("pool", ThreadPoolExecutor)
REGISTRY: web.AppKey[CollectorRegistry] = web.AppKey("registry", CollectorRegistry)
PING_DEADLINE: web.AppKey[float] = web.AppKey("ping_deadline", float)


async def _off_loop(request: web.Request, fn: Callable[[], T], deadline: float) -> T:
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(deadline):
        return await loop.run_in_executor(request.app[POOL], fn)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readiness(request: web.Request) -> dict[str, str]:
    """Each check's verdict: "ok" or why not."""
    svc = request.app[SERVICE]
    checks: dict[str, str] = {}
    store = svc.store
    if store is None:
        checks["store"] = "not open"
    else:
        try:
            await _off_loop(request, store.ping, request.app[PING_DEADLINE])
            checks["store"] = "ok"
        except TimeoutError:
            checks["store"] = f"no answer within {request.app[PING_DEADLINE]:g} s"
        except Exception as exc:  # any failure of the database means "not ready", with why
            checks["store"] = f"{type(exc).__name__}: {exc}"
    scorer = getattr(svc, "scorer", None)
    rules = getattr(scorer, "rules", None)
    checks["rules"] = "ok" if rules is not None else "not loaded"
    ticker = svc.ticker
    if svc.stopping.is_set():
        checks["scheduler"] = "stopping"
    elif ticker is None or not ticker.running:
        checks["scheduler"] = "not running"
    else:
        checks["scheduler"] = "ok"
    return checks


async def readyz(request: web.Request) -> web.Response:
    checks = await readiness(request)
    failing = sorted(k for k, v in checks.items() if v != "ok")
    body = {"ready": not failing, "failing": failing, "checks": checks}
    return web.json_response(body, status=503 if failing else 200, dumps=_dumps)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY]
    try:
        text = await _off_loop(request, lambda: generate_latest(registry), PAGE_TIMEOUT)
    except TimeoutError:
        return web.Response(status=503, text="metrics: the store did not answer in time\n")
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


async def dashboard(request: web.Request) -> web.Response:
    from monitor import dashboard as page

    svc = request.app[SERVICE]
    store = svc.store
    if store is None:
        return web.Response(status=503, text="the store is not open yet\n")
    now = svc.clock()
    config = svc.config
    try:
        view = await _off_loop(request, lambda: page.gather(store, config, now), PAGE_TIMEOUT)
    except TimeoutError:
        return web.Response(status=503, text="the store did not answer in time\n")
    checks = await readiness(request)
    html = page.render(view, checks=checks)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _auth(token: str | None, required: bool) -> Any:
    @web.middleware
    async def check(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        guarded = required and request.path not in OPEN_PATHS
        if guarded and (token is None or not token_ok(request.headers.get("Authorization"), token)):
            return web.Response(
                status=401,
                text="a bearer token is required\n",
                headers={"WWW-Authenticate": 'Bearer realm="news-monitor"'},
            )
        return await handler(request)

    return check


def build_app(
    service: Service,
    *,
    registry: CollectorRegistry,
    token: str | None = None,
    require_token: bool = False,
    pool: ThreadPoolExecutor | None = None,
    ping_timeout: float = PING_TIMEOUT,
) -> web.Application:
    """The admin application; ``require_token`` without a token refuses every guarded path."""
    app = web.Application(middlewares=[_auth(token, require_token)])
    app[SERVICE] = service
    app[REGISTRY] = registry
    own = pool or ThreadPoolExecutor(max_workers=2, thread_name_prefix="admin")
    app[POOL] = own
    app[PING_DEADLINE] = ping_timeout

    async def shutdown(_: web.Application) -> None:
        # A probe stuck on a dead database must not hold the process open at exit.
        own.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", dashboard)
    return app


def registry_for(service: Service) -> CollectorRegistry:
    """The daemon's Metrics registry bound to its store, or store gauges alone without one."""
    observer = service.observer
    store = service.store
    if isinstance(observer, Metrics):
        if store is not None:
            observer.bind(store, service.clock)
        observer.channels(c.name for c in service.config.channels)
        return observer.registry
    registry = CollectorRegistry()
    if store is not None:
        registry.register(StoreCollector(store, service.clock))
    return registry


class AdminServer:
    """A listening admin application; ``await server.stop()`` closes it."""

    def __init__(self, runner: web.AppRunner, host: str, port: int) -> None:
        self._runner = runner
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        await self._runner.cleanup()  # runs the app's cleanup: its thread pool is shut down


async def listen(app: web.Application, host: str, port: int) -> AdminServer:
    """Serve ``app`` on ``host:port`` (port 0: any free port); OSError when it cannot bind."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = int(runner.addresses[0][1]) if runner.addresses else port
    return AdminServer(runner, host, bound)


async def serve(
    service: Service,
    admin: AdminConfig,
    *,
    registry: CollectorRegistry,
) -> AdminServer:
    """Listen on ``admin.listen``, requiring the token beyond loopback or when one is set."""
    token = admin.token.get_secret_value() if admin.token is not None else None
    required = token is not None or not is_loopback(admin.host)
    if required and token is None:
        raise ConfigError(
            f"admin: listen {admin.listen} is beyond loopback: token_env or token_file is required"
        )
    app = build_app(service, registry=registry, token=token, require_token=required)
    try:
        server = await listen(app, admin.host, admin.port)
    except OSError as exc:
        raise ConfigError(f"admin: cannot listen on {admin.listen}: {exc.strerror}") from exc
    log.info(
        "admin endpoint on %s%s",
        server.url,
        " (bearer token required)" if required else "",
        extra={"event": "admin"},
    )
    return server


async def start_admin(service: Service) -> AdminServer:
    """What ``Daemon.run`` calls once its store is open and its ticker started."""
    return await serve(service, service.config.admin, registry=registry_for(service))
