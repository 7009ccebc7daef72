"""The `monitor` command line: a thin entry point.

Every command module registers its commands on the root group; errors of ours become one line on
stderr and an exit code (2 for configuration mistakes), never a traceback unless ``--debug``.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from monitor import __version__
from monitor.errors import MonitorError


class _Root(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MonitorError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"error: {line}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=_Root)
@click.version_option(__version__, prog_name="monitor")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """news-monitor: watch news feeds and alert when an article matters."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


def _register() -> None:
    # Each module owns one family of commands; importing it adds them to `cli`.
    from monitor.cli import deliveries, feeds, model, ops, outbox, rules, service

    for module in (service, feeds, rules, model, deliveries, outbox, ops):
        module.register(cli)


def main(argv: list[str] | None = None) -> None:
    _register()
    cli.main(args=argv, prog_name="monitor", standalone_mode=True)


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
