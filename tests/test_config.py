"""Configuration: every mistake has its own precise message and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import _register, cli
from monitor.config import load_config, parse_duration
from monitor.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures" / "bad_config"
BAD = sorted(FIXTURES.glob("*.toml"))


def expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    assert first.startswith("# expect: "), path
    return first.removeprefix("# expect: ")


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_each_broken_config_has_its_own_message_and_exit_code_2(path: Path) -> None:
    os.environ.pop("MONITOR_TEST_UNSET_SECRET", None)
    _register()
    result = CliRunner().invoke(cli, ["config", "check", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert expected(path) in result.output
    assert "Traceback" not in result.output
    assert result.output.startswith("error: ")


def test_the_fixtures_cover_distinct_messages() -> None:
    messages = [expected(p) for p in BAD]
    assert len(set(messages)) == len(messages) >= 10


def test_a_missing_config_file_is_named() -> None:
    _register()
    result = CliRunner().invoke(cli, ["config", "check", "--config", "/nonexistent/monitor.toml"])
    assert result.exit_code == 2
    assert "/nonexistent/monitor.toml: cannot read configuration" in result.output


def test_the_shipped_example_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[1] / "examples" / "monitor.toml")
    assert len(config.feeds) >= 5 and all(f.url.startswith("https://") for f in config.feeds)
    assert config.storage_url.endswith("/var/monitor.db")
    assert config.rule_paths[0].resolve() == (Path(__file__).parents[1] / "rules").resolve()


def test_secrets_come_from_env_or_file_and_stay_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("whsec_c2VjcmV0\n")
    (tmp_path / "m.toml").write_text(
        '[[channels]]\nname = "h"\ntype = "webhook"\nurl = "https://h.example/"\n'
        'secret_file = "s"\n'
    )
    config = load_config(tmp_path / "m.toml")
    (secret,) = config.channels[0].secrets  # type: ignore[union-attr]
    assert secret.get_secret_value() == "whsec_c2VjcmV0"
    assert "c2VjcmV0" not in repr(config)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h30m", 5400), ("2d", 172800), ("250ms", 0.25), (42, 42)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 minutes", "-5s", True])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    (tmp_path / "m.toml").write_text('[fetch]\ntimout = 1\nmax_bytes = "big"\n')
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "m.toml")
    assert {p.path for p in err.value.problems} == {"fetch.timout", "fetch.max_bytes"}
