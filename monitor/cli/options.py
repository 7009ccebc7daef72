"""Options and helpers shared by command modules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import click

from monitor.config import Config, load_config

F = TypeVar("F", bound=Any)

DEFAULT_CONFIG = "monitor.toml"


def config_option(func: F) -> F:
    """``--config PATH`` (default: $MONITOR_CONFIG, else ./monitor.toml)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: os.environ.get("MONITOR_CONFIG", DEFAULT_CONFIG),
        show_default="$MONITOR_CONFIG or ./monitor.toml",
        help="Configuration file (TOML).",
    )(func)


def read_config(path: Path) -> Config:
    return load_config(path)
