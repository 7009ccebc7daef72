"""The TOML configuration: strictly validated, every mistake reported at once.

An unknown key or a wrong type is an error naming the file and the key path
(``monitor.toml: channels[1].secret_file: cannot read /run/x: No such file``).
Secrets come from ``*_env`` (an environment variable) or ``*_file`` keys and are
resolved at load time, so a missing secret stops start-up, not the first delivery.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)

from monitor.errors import ConfigError, Problem

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '90s', '5m' or '1h'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        pos, seconds = 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ValueError(f"{value!r} is not a duration such as '90s', '5m' or '1h30m'")
    else:
        raise ValueError("expected a duration such as '90s', '5m' or '1h'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _read_secret(
    value: str | None, env: str | None, file: str | None, *, base: Path, required: bool, key: str
) -> SecretStr | None:
    given = [k for k, v in ((key, value), (f"{key}_env", env), (f"{key}_file", file)) if v]
    if len(given) > 1:
        raise ValueError(f"give only one of {', '.join(given)}")
    if env:
        if env not in os.environ:
            raise ValueError(f"{key}_env: environment variable {env} is not set")
        return SecretStr(os.environ[env])
    if file:
        path = Path(file) if Path(file).is_absolute() else base / file
        try:
            return SecretStr(path.read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise ValueError(f"{key}_file: cannot read {path}: {exc.strerror}") from exc
    if value:
        return SecretStr(value)
    if required:
        raise ValueError(f"one of {key}, {key}_env or {key}_file is required")
    return None


class StorageConfig(_Strict):
    url: str = "sqlite:///var/monitor.db"
    retention: Duration = 90 * 86400.0  # articles older than this are pruned (alerts kept)


class RulesConfig(_Strict):
    paths: list[str] = ["rules"]
    watch: bool = True  # reload when a rule file changes


class ClassifierConfig(_Strict):
    model: str = "builtin"  # "builtin", "none" or a path to a model file made by `monitor train`


class FeedConfig(_Strict):
    name: str = Field(min_length=1)
    url: str = Field(pattern=r"^https?://")
    interval: Duration = 900.0
    tags: list[str] = []
    enabled: bool = True


class FetchConfig(_Strict):
    timeout: Duration = 30.0  # total deadline of one fetch, body included
    connect_timeout: Duration = 10.0
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)  # decoded body size limit
    max_redirects: int = Field(default=5, ge=0)
    concurrency: int = Field(default=32, gt=0)
    per_host: int = Field(default=2, gt=0)
    min_interval: Duration = 60.0
    max_interval: Duration = 86400.0
    jitter: float = Field(default=0.1, ge=0, le=0.5)  # fraction of the interval
    stale_after: Duration = 3 * 86400.0  # a feed with no new item for this long is "stale"
    user_agent: str = "news-monitor/0.1 (+https://github.com/news-monitor)"


class _ChannelBase(_Strict):
    name: str = Field(min_length=1)
    timeout: Duration = 15.0


class WebhookChannelConfig(_ChannelBase):
    type: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    # During rotation both secrets sign every request (Standard Webhooks).
    previous_secret_env: str | None = None
    previous_secret_file: str | None = None
    headers: dict[str, str] = {}
    _secrets: tuple[SecretStr, ...] = PrivateAttr(default=())

    @property
    def secrets(self) -> tuple[SecretStr, ...]:
        return self._secrets


class EmailChannelConfig(_ChannelBase):
    type: Literal["email"]
    host: str
    port: int = Field(default=587, gt=0, lt=65536)
    tls: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    from_: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    _password: SecretStr | None = PrivateAttr(default=None)

    @property
    def password(self) -> SecretStr | None:
        return self._password


ChannelConfig = Annotated[WebhookChannelConfig | EmailChannelConfig, Field(discriminator="type")]


class RoutesConfig(_Strict):
    default: list[str] = []


def _default_backoff() -> list[float]:
    # After the first attempt: 5s, 5m, 30m, 2h, 5h, 10h, 10h (the Standard Webhooks example).
    return [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]


class DeliveryConfig(_Strict):
    backoff: list[Duration] = Field(default_factory=_default_backoff)
    timeout: Duration = 15.0  # default per-attempt deadline; a channel's own `timeout` wins
    concurrency: int = Field(default=8, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)  # +- fraction of each backoff step
    poll: Duration = 1.0  # how often the outbox is checked for due deliveries
    # Deliveries in flight per channel. 1: strictly one after another, so a receiver sees them
    # in creation order even across failures. N > 1: sends still start in creation order and
    # stop at the first retryable failure, but up to N overlap, so after a failure a later
    # delivery may arrive before the retried one.
    per_channel: int = Field(default=1, gt=0)


class AdminConfig(_Strict):
    listen: str = Field(default="127.0.0.1:8787", pattern=r"^\[?[0-9A-Za-z.:-]*\]?:\d+$")
    token_env: str | None = None
    token_file: str | None = None
    _token: SecretStr | None = PrivateAttr(default=None)

    @property
    def token(self) -> SecretStr | None:
        return self._token

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def loopback(self) -> bool:
        return self.host in ("127.0.0.1", "localhost", "::1")


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(_Strict):
    storage: StorageConfig = StorageConfig()
    rules: RulesConfig = RulesConfig()
    classifier: ClassifierConfig = ClassifierConfig()
    feeds: list[FeedConfig] = []
    fetch: FetchConfig = FetchConfig()
    channels: list[ChannelConfig] = []
    routes: RoutesConfig = RoutesConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    admin: AdminConfig = AdminConfig()
    log: LogConfig = LogConfig()
    _path: Path = PrivateAttr(default=Path("monitor.toml"))

    @property
    def path(self) -> Path:
        return self._path

    @property
    def base_dir(self) -> Path:
        return self._path.parent

    @model_validator(mode="after")
    def _cross_check(self) -> Config:
        problems: list[str] = []
        for kind, names in (
            ("feed", [f.name for f in self.feeds]),
            ("channel", [c.name for c in self.channels]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                problems.append(f"duplicate {kind} name(s): {', '.join(dupes)}")
        known = {c.name for c in self.channels}
        listed = ", ".join(sorted(known)) or "none"
        problems += [
            f"routes.default: unknown channel {name!r} (known: {listed})"
            for name in self.routes.default
            if name not in known
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def channel(self, name: str) -> WebhookChannelConfig | EmailChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    def resolved_path(self, value: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        p = Path(value)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def rule_paths(self) -> list[Path]:
        return [self.resolved_path(p) for p in self.rules.paths]

    @property
    def storage_url(self) -> str:
        """The storage URL with a relative SQLite path resolved against the config folder."""
        url = self.storage.url
        prefix = "sqlite:///"
        if (
            url.startswith(prefix)
            and not url.startswith(prefix + "/")
            and url != "sqlite:///:memory:"
        ):
            return prefix + str(self.resolved_path(url[len(prefix) :]))
        return url


def _loc(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("webhook", "email"):  # discriminated-union tags add noise to the path
            continue
        else:
            out += ("." if out else "") + ("from" if part == "from_" else str(part))
    return out


def _problems(file: str, err: ValidationError) -> list[Problem]:
    out = []
    for e in err.errors():
        reason = e["msg"]
        if e["type"] == "extra_forbidden":
            reason = "unknown key"
        elif e["type"] == "missing":
            reason = "required key is missing"
        reason = reason.removeprefix("Value error, ")
        out.append(Problem(file=file, line=None, column=None, path=_loc(e["loc"]), reason=reason))
    return out


def _resolve_secrets(config: Config, file: str) -> list[Problem]:
    base = config.base_dir
    problems: list[Problem] = []
    for i, ch in enumerate(config.channels):
        try:
            if isinstance(ch, WebhookChannelConfig):
                cur = _read_secret(
                    ch.secret, ch.secret_env, ch.secret_file, base=base, required=True, key="secret"
                )
                prev = _read_secret(
                    None,
                    ch.previous_secret_env,
                    ch.previous_secret_file,
                    base=base,
                    required=False,
                    key="previous_secret",
                )
                ch._secrets = tuple(s for s in (cur, prev) if s is not None)
            else:
                ch._password = _read_secret(
                    None,
                    ch.password_env,
                    ch.password_file,
                    base=base,
                    required=False,
                    key="password",
                )
                if ch._password is not None and not ch.username:
                    raise ValueError("username: required when a password is given")
        except ValueError as exc:
            problems.append(Problem(file, None, None, f"channels[{i}]", str(exc)))
    admin = config.admin
    try:
        admin._token = _read_secret(
            None, admin.token_env, admin.token_file, base=base, required=False, key="token"
        )
        if admin._token is None and not admin.loopback:
            raise ValueError(
                f"listen {admin.listen} is beyond loopback: token_env or token_file is required"
            )
    except ValueError as exc:
        problems.append(Problem(file, None, None, "admin", str(exc)))
    return problems


def parse_config(data: Mapping[str, Any], *, path: Path) -> Config:
    """Validate a decoded TOML document; raise ConfigError listing every problem."""
    file = str(path)
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(_problems(file, err)) from None
    config._path = path
    problems = _resolve_secrets(config, file)
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a TOML configuration file."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read configuration: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(str(p), None, None, "", f"not valid TOML: {exc}")]) from None
    return parse_config(data, path=p.resolve())
