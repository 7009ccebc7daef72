"""OPML subscription lists: read them safely, write OPML 2.0, merge them into the config file.

OPML files come from other programs and strangers, so the reader refuses any DTD (and with it
entity declarations: no billion laughs, no external entities) and reads with expat directly.
Importing appends ``[[feeds]]`` tables to the TOML text (keeping the operator's comments and
layout), validates the whole result with :func:`monitor.config.parse_config`, and only then
replaces the file atomically.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat

from monitor.config import FeedConfig, parse_config
from monitor.errors import ConfigError, DataError, Problem


@dataclass(frozen=True, slots=True, kw_only=True)
class OpmlFeed:
    name: str
    url: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportReport:
    added: tuple[OpmlFeed, ...]
    skipped: tuple[OpmlFeed, ...]  # already in the configuration (same URL)


class _Refused(Exception):
    pass


def parse_opml(data: bytes, *, source: str) -> list[OpmlFeed]:
    """Every outline with an ``xmlUrl``; tags from ``category`` and the enclosing folders."""
    parser = expat.ParserCreate()
    folders: list[str | None] = []  # one entry per open <outline>: its folder name or None
    feeds: list[OpmlFeed] = []
    seen: set[str] = set()

    def refuse(*_: Any) -> None:
        raise _Refused("DTDs and entity declarations are not allowed in OPML")

    def start(tag: str, attrs: dict[str, str]) -> None:
        if tag != "outline":
            return
        label = (attrs.get("title") or attrs.get("text") or "").strip()
        url = (attrs.get("xmlUrl") or attrs.get("xmlurl") or "").strip()
        if not url:
            folders.append(label or None)
            return
        folders.append(None)
        if url in seen or urlsplit(url).scheme not in ("http", "https"):
            return
        seen.add(url)
        tags = [f for f in folders if f]
        for cat in (attrs.get("category") or "").split(","):
            tags += [part.strip() for part in cat.split("/") if part.strip()]
        unique = tuple(dict.fromkeys(tags))
        feeds.append(OpmlFeed(name=label or urlsplit(url).netloc, url=url, tags=unique))

    def end(tag: str) -> None:
        if tag == "outline" and folders:
            folders.pop()

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse  # type: ignore[assignment]
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise DataError(source, parser.CurrentLineNumber, str(exc)) from None
    except expat.ExpatError as exc:
        raise DataError(
            source, exc.lineno, f"not valid OPML: {expat.errors.messages[exc.code]}"
        ) from None
    return feeds


def render_opml(feeds: Sequence[FeedConfig], *, title: str = "news-monitor feeds") -> str:
    """OPML 2.0 listing the configured feeds (tags become the ``category`` attribute)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for feed in feeds:
        attrs = {"type": "rss", "text": feed.name, "title": feed.name, "xmlUrl": feed.url}
        if feed.tags:
            attrs["category"] = ",".join(feed.tags)
        ET.SubElement(body, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _toml_str(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _feed_table(feed: OpmlFeed) -> str:
    lines = ["", "[[feeds]]", f"name = {_toml_str(feed.name)}", f"url = {_toml_str(feed.url)}"]
    if feed.tags:
        lines.append(f"tags = [{', '.join(_toml_str(t) for t in feed.tags)}]")
    return "\n".join(lines) + "\n"


def import_opml(config_path: Path, opml: bytes, *, source: str) -> ImportReport:
    """Append the OPML's feeds that the configuration lacks; validate; replace atomically."""
    try:
        text = config_path.read_text(encoding="utf-8") if config_path.exists() else ""
        current = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read the configuration: {exc}") from None
    existing = [f for f in current.get("feeds", []) if isinstance(f, dict)]
    urls = {str(f.get("url", "")) for f in existing}
    names = {str(f.get("name", "")) for f in existing}
    added: list[OpmlFeed] = []
    skipped: list[OpmlFeed] = []
    for feed in parse_opml(opml, source=source):
        if feed.url in urls:
            skipped.append(feed)
            continue
        name, n = feed.name, 2
        while name in names:  # feed names must be unique in the configuration
            name, n = f"{feed.name} ({n})", n + 1
        names.add(name)
        urls.add(feed.url)
        added.append(OpmlFeed(name=name, url=feed.url, tags=feed.tags))
    if not added:
        return ImportReport(added=(), skipped=tuple(skipped))
    new_text = text + ("" if not text or text.endswith("\n") else "\n")
    new_text += "".join(_feed_table(f) for f in added)
    try:
        parse_config(tomllib.loads(new_text), path=config_path)
    except tomllib.TOMLDecodeError as exc:
        problem = Problem(str(config_path), None, None, "feeds", f"cannot append feeds: {exc}")
        raise ConfigError([problem]) from None
    _replace_atomically(config_path, new_text)
    return ImportReport(added=tuple(added), skipped=tuple(skipped))


def _replace_atomically(path: Path, text: str) -> None:
    folder = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
