"""Command line: ``irconstyle <command> …``. Parses arguments and calls the library; nothing else."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irconstyle", description="IRConStyle image restoration.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models = commands.add_parser("models", help="list the architectures build_model knows")
    models.set_defaults(handler=_run_models)
    return parser


def _version() -> str:
    from irconstyle import __version__

    return __version__


def _run_models(args: argparse.Namespace) -> int:
    from irconstyle.models.registry import MODELS

    for name in sorted(MODELS):
        print(f"{name:20s} {MODELS[name].description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
