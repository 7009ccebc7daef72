"""`monitor demo`: the offline first run (see monitor.demo)."""

from __future__ import annotations

import asyncio
import logging

import click


@click.command()
@click.option("--serve", is_flag=True, help="Keep the dashboard up until Ctrl-C.")
@click.option(
    "--linger",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds the dashboard stays up after the alerts arrived (without --serve).",
)
@click.option("--port", type=int, default=0, help="Dashboard port on 127.0.0.1 (default: any).")
@click.option(
    "--timeout",
    "deadline",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for alerts of every default topic.",
)
def demo(serve: bool, linger: float, port: int, deadline: float) -> None:
    """Run the whole service offline on bundled sample feeds and show the alerts it sends."""
    from monitor.demo import run_demo

    # The daemon's own log lines would drown the demo's output: only problems are shown.
    logging.basicConfig(level=logging.WARNING, format="  (%(levelname)s) %(message)s")
    code = asyncio.run(run_demo(serve=serve, linger=linger, port=port, deadline=deadline))
    raise SystemExit(code)


def register(cli: click.Group) -> None:
    cli.add_command(demo)
