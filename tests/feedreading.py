"""How feed files read, as plain JSON, for comparing two feedparser set-ups.

Every dict is written with the keys it really stores: a FeedParserDict re-maps alias keys such as
``url`` when rebuilt, which would hide a copy that kept one. Imports nothing from ``monitor``, so
run as a script (``python feedreading.py FILE...``, one JSON list on stdout) it reads the files
with feedparser as it ships; imported beside ``monitor.parse`` it reads them with its changes.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import feedparser


def plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in dict.items(obj)}
    if isinstance(obj, list | tuple | time.struct_time):
        return [plain(v) for v in obj]
    return obj if obj is None or isinstance(obj, str | int | float | bool) else repr(obj)


def read(paths: Sequence[str]) -> list[str]:
    """Each file's feed and entries, parsed as monitor.parse parses, as sorted JSON."""
    out = []
    for path in paths:
        with open(path, "rb") as f:
            body = io.BytesIO(f.read())
        doc = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False)
        out.append(json.dumps(plain([doc.get("feed"), doc.get("entries")]), sort_keys=True))
    return out


if __name__ == "__main__":
    print(json.dumps(read(sys.argv[1:])))
