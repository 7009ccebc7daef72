"""Run the benchmarks: ``python -m bench [--json] [--only PREFIX]``."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

from bench.harness import Result


def _groups() -> dict[str, object]:
    groups: dict[str, object] = {}
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("bench_"):
            module = importlib.import_module(f"bench.{info.name}")
            groups.update(getattr(module, "GROUPS", {}))
    return groups


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--only", default="", help="run only benchmarks whose name starts with this"
    )
    args = parser.parse_args()
    if not args.json:
        print(f"{'benchmark':<22} {'value':>12} {'unit':<12} {'floor':>12} {'ratio':>7}  note")
    for prefix, run in sorted(_groups().items()):
        if args.only and not (prefix.startswith(args.only) or args.only.startswith(prefix)):
            continue
        for result in run():  # type: ignore[operator]
            assert isinstance(result, Result)
            if args.only and not result.name.startswith(args.only):
                continue
            if args.json:
                print(json.dumps(result.as_json()), flush=True)
            else:
                print(
                    f"{result.name:<22} {result.value:>12.2f} {result.unit:<12} "
                    f"{result.floor:>12.2f} {result.ratio:>7.2f}  {result.note}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
