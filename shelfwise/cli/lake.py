"""`shelfwise lake ...`: list the lake, ingest a world into it, or run a local lake to work against.

Commands reach the bucket at the configured endpoint: in AWS the real bucket, locally the moto server that
`shelfwise lake serve` (or any other local run) starts and names in `AWS_ENDPOINT_URL`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from shelfwise.lake import Lake, LakeObject

app = typer.Typer(no_args_is_help=True)
console = Console()

NO_LAKE = (
    "no lake to reach: AWS_ENDPOINT_URL is not set and no AWS credentials were found. "
    "Locally, run `shelfwise lake serve` in another terminal and export the variables it prints; "
    "in AWS, configure credentials (e.g. AWS_PROFILE)."
)


@app.command("ls")
def ls(
    prefix: Annotated[str, typer.Argument(help="Key prefix, e.g. raw/order_lines/.")] = "",
    summary: Annotated[bool, typer.Option("--summary", help="Objects and bytes per zone.")] = False,
    limit: Annotated[int, typer.Option(help="Above this many objects, aggregate by partition folder.")] = 50,
    all_keys: Annotated[bool, typer.Option("--all", help="List every key, however many.")] = False,
) -> None:
    """List the lake's keys under PREFIX with their sizes."""
    lake = _connect()
    with _lake_errors(lake):
        if summary:
            console.print(summary_table(lake.summary()))
            return
        objects = list(lake.list(prefix))
    if not objects:
        console.print(f"no objects under {lake.uri(prefix)}")
        return
    if all_keys or len(objects) <= limit:
        console.print(keys_table(objects, lake.uri(prefix)))
    else:
        console.print(folders_table(objects, prefix, lake.uri(prefix)))
        console.print(f"{len(objects):,} objects; --all lists every key")


@app.command("ingest")
def ingest(
    world: Annotated[Path, typer.Argument(help="A world folder (shelfwise world generate / load).")],
    workers: Annotated[int, typer.Option(min=1, max=64, help="Parallel uploads.")] = 4,
) -> None:
    """Copy a world folder into the raw zone, replacing the world there."""
    from shelfwise.ingest import WorldError, ingest_world

    lake = _connect()
    try:
        with (
            _lake_errors(lake),
            Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar,
        ):
            task = bar.add_task(f"ingest {world}", total=1.0)
            report = ingest_world(
                world, lake, progress=lambda _stage, fraction: bar.update(task, completed=fraction), workers=workers
            )
    except WorldError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"{report.kind} world -> {lake.uri('raw/')}", title_justify="left")
    table.add_column("source")
    table.add_column("rows", justify="right")
    for source, rows in report.rows.items():
        table.add_row(source, f"{rows:,}")
    table.add_row("product_images", f"{report.images:,}")
    console.print(table)
    console.print(f"{report.objects:,} objects, {human_bytes(report.bytes)} in raw/")


@app.command("serve")
def serve() -> None:
    """Run a local lake (moto server with the bucket and tables) until Ctrl-C."""
    import logging

    from shelfwise.local_aws import LOCAL_CREDENTIALS, local_aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request drowns the terminal
    with local_aws() as aws:
        console.print(f"local AWS on {aws.endpoint}, lake bucket {aws.settings.lake_bucket}. In another shell:")
        exports = " ".join(f"{k}={v}" for k, v in LOCAL_CREDENTIALS.items())
        console.print(f"export AWS_ENDPOINT_URL={aws.endpoint} {exports}", soft_wrap=True, highlight=False)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping")


def _connect() -> Lake:
    """The configured lake, or a clear exit when there is nothing to connect to."""
    import boto3

    from shelfwise.config import ConfigError, settings
    from shelfwise.lake import Lake

    try:
        cfg = settings()
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if cfg.aws_endpoint_url is None and boto3.Session().get_credentials() is None:
        console.print(f"[red]error:[/] {NO_LAKE}")
        raise typer.Exit(1)
    return Lake(cfg)


@contextmanager
def _lake_errors(lake: Lake) -> Iterator[None]:
    """Turn the errors of reaching the bucket into one line and exit code 1."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        console.print(f"[red]error:[/] s3://{lake.bucket}: {error.get('Code', '?')}: {error.get('Message', '')}")
        raise typer.Exit(1) from None
    except BotoCoreError as exc:
        console.print(f"[red]error:[/] cannot reach the lake bucket {lake.bucket}: {exc}")
        raise typer.Exit(1) from None


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def summary_table(totals: dict[str, tuple[int, int]]) -> Table:
    table = Table(title="lake zones", title_justify="left")
    table.add_column("zone")
    table.add_column("objects", justify="right")
    table.add_column("size", justify="right")
    for zone, (objects, size) in totals.items():
        table.add_row(zone, f"{objects:,}", human_bytes(size))
    return table


def keys_table(objects: list[LakeObject], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("key")
    table.add_column("size", justify="right")
    for obj in objects:
        table.add_row(obj.key, human_bytes(obj.size))
    return table


def folders_table(objects: list[LakeObject], prefix: str, title: str) -> Table:
    """Objects and bytes per folder one level below `prefix` (e.g. per `dt=` partition of a source)."""
    folders: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for obj in objects:
        rest = obj.key[len(prefix) :]
        folder = prefix + rest.split("/", 1)[0] + "/" if "/" in rest else obj.key
        folders[folder][0] += 1
        folders[folder][1] += obj.size
    table = Table(title=title, title_justify="left")
    table.add_column("folder")
    table.add_column("objects", justify="right")
    table.add_column("size", justify="right")
    for folder, (count, size) in sorted(folders.items()):
        table.add_row(folder, f"{count:,}", human_bytes(size))
    return table
