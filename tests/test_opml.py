from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from monitor.config import FeedConfig, load_config
from monitor.errors import ConfigError, DataError
from monitor.opml import import_opml, parse_opml, render_opml

OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0"><head><title>subs</title></head><body>
  <outline text="World">
    <outline text="Wire &amp; Co" title="Wire &amp; Co" type="rss"
             xmlUrl="https://wire.example/rss" category="/Agencies/Europe,priority"/>
    <outline text="Energy">
      <outline text="Gas Daily" xmlUrl="https://gas.example/feed.xml"/>
    </outline>
  </outline>
  <outline xmlUrl="https://untitled.example/atom"/>
  <outline text="dup" xmlUrl="https://wire.example/rss"/>
  <outline text="not http" xmlUrl="ftp://x.example/feed"/>
</body></opml>"""


def test_outlines_become_feeds_with_folder_and_category_tags() -> None:
    feeds = parse_opml(OPML, source="subs.opml")
    assert [(f.name, f.url, f.tags) for f in feeds] == [
        ("Wire & Co", "https://wire.example/rss", ("World", "Agencies", "Europe", "priority")),
        ("Gas Daily", "https://gas.example/feed.xml", ("World", "Energy")),
        ("untitled.example", "https://untitled.example/atom", ()),
    ]


@pytest.mark.parametrize(
    "doc",
    [
        b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        b'<opml><body><outline text="&b;" xmlUrl="https://x.example/"/></body></opml>',
        b'<?xml version="1.0"?><!DOCTYPE opml SYSTEM "file:///etc/passwd"><opml/>',
        b'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b"<opml><body><outline text='&x;' xmlUrl='https://x.example/'/></body></opml>",
    ],
)
def test_dtds_and_entities_are_refused(doc: bytes) -> None:
    with pytest.raises(DataError, match="DTD"):
        parse_opml(doc, source="evil.opml")


def test_malformed_opml_names_file_and_line() -> None:
    with pytest.raises(DataError) as info:
        parse_opml(b"<opml>\n<body>\n<outline></body>", source="bad.opml")
    assert str(info.value).startswith("bad.opml:3:")


def test_export_round_trips_through_import() -> None:
    feeds = [
        FeedConfig(name="A <&> B", url="https://a.example/rss?x=1&y=2", tags=["x", "y"]),
        FeedConfig(name="C", url="http://c.example/feed"),
    ]
    text = render_opml(feeds)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">')
    back = parse_opml(text.encode(), source="export")
    assert [(f.name, f.url, f.tags) for f in back] == [
        ("A <&> B", "https://a.example/rss?x=1&y=2", ("x", "y")),
        ("C", "http://c.example/feed", ()),
    ]


CONFIG = """# operator's comment stays
[fetch]
timeout = "20s"

[[feeds]]
name = "Wire"
url = "https://wire.example/rss"
"""


def test_import_appends_only_new_feeds_and_keeps_the_file_valid(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text(CONFIG)
    report = import_opml(path, OPML, source="subs.opml")
    assert [f.url for f in report.added] == [
        "https://gas.example/feed.xml",
        "https://untitled.example/atom",
    ]
    assert [f.url for f in report.skipped] == ["https://wire.example/rss"]
    text = path.read_text()
    assert text.startswith(CONFIG)  # comments and layout kept
    config = load_config(path)
    assert [f.name for f in config.feeds] == ["Wire", "Gas Daily", "untitled.example"]
    assert config.feeds[1].tags == ["World", "Energy"] and config.feeds[1].interval == 900.0
    again = import_opml(path, OPML, source="subs.opml")
    assert again.added == () and path.read_text() == text
    assert not list(tmp_path.glob(".*.tmp"))


def test_import_renames_a_clashing_name(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_text('[[feeds]]\nname = "Gas Daily"\nurl = "https://other.example/x"\n')
    import_opml(path, OPML, source="subs.opml")
    names = [f["name"] for f in tomllib.loads(path.read_text())["feeds"]]
    assert "Gas Daily (2)" in names and len(names) == len(set(names))


def test_import_that_would_break_the_config_leaves_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    broken = 'feeds = [{ name = "Wire", url = "https://wire.example/rss" }]\n'
    path.write_text(broken)
    with pytest.raises(ConfigError):
        import_opml(path, OPML, source="subs.opml")
    assert path.read_text() == broken
    assert not list(tmp_path.glob(".*.tmp"))


def test_import_into_a_missing_config_creates_it(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    import_opml(path, OPML, source="subs.opml")
    assert len(load_config(path).feeds) == 3
