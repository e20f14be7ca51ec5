"""Job arguments the way Glue passes them (`--name value`), resolved by `awsglue` in Glue and argparse locally."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import NoReturn


class JobArgumentError(ValueError):
    """A job argument is missing or malformed; the message names it."""


def resolve_args(
    argv: Sequence[str], names: Sequence[str], optional: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The values of `--name value` arguments in `argv` (`sys.argv`, program name first).

    `names` are required; `optional` maps further names to their defaults. Glue adds arguments of its own
    (`--JOB_NAME`, `--TempDir`, ...), which are ignored.
    """
    optional = dict(optional or {})
    present = [name for name in optional if f"--{name}" in argv]
    try:
        from awsglue.utils import getResolvedOptions
    except ImportError:
        resolved = _parse_locally(argv, names, optional)
    else:
        # getResolvedOptions fails on any name that is absent, so optional names are asked for only when given.
        resolved = {**optional, **getResolvedOptions(list(argv), [*names, *present])}
    return {name: resolved[name] for name in [*names, *optional]}


def _parse_locally(argv: Sequence[str], names: Sequence[str], optional: Mapping[str, str]) -> dict[str, str]:
    parser = _Parser(prog=argv[0] if argv else "job", add_help=False)
    for name in names:
        parser.add_argument(f"--{name}", required=True)
    for name, default in optional.items():
        parser.add_argument(f"--{name}", default=default)
    known, _ = parser.parse_known_args(list(argv[1:]))
    return {key: str(value) for key, value in vars(known).items()}


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so callers and tests see which argument is wrong."""

    def error(self, message: str) -> NoReturn:
        raise JobArgumentError(message)


def split_list(value: str) -> list[str]:
    """`"a, b,,c"` -> `["a", "b", "c"]`."""
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_date(name: str, value: str) -> dt.date:
    """An ISO date argument; a `JobArgumentError` naming the argument otherwise."""
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise JobArgumentError(f"--{name}: {value!r} is not a date (YYYY-MM-DD)") from None


def parse_int(name: str, value: str, minimum: int = 1) -> int:
    """An integer argument of at least `minimum`; a `JobArgumentError` naming the argument otherwise."""
    try:
        number = int(value)
    except ValueError:
        raise JobArgumentError(f"--{name}: {value!r} is not an integer") from None
    if number < minimum:
        raise JobArgumentError(f"--{name}: {number} is below the minimum {minimum}")
    return number
