"""`shelfwise world ...`: generate a synthetic retailer, or load a real data set into a world folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shelfwise.cli import world_load

app = typer.Typer(no_args_is_help=True)
app.add_typer(world_load.app, name="load", help="Load a real data set into a world folder.")
console = Console()


@app.command("generate")
def generate(
    scale: Annotated[
        str, typer.Option("--scale", help="small (tests, seconds), default (demo, < 1 min) or large (benchmarks).")
    ] = "default",
    seed: Annotated[int, typer.Option("--seed", help="The same seed always gives byte-identical files.")] = 42,
    out: Annotated[
        Path | None, typer.Option("--out", help="The world folder (default: <work_dir>/worlds/<scale>-<seed>).")
    ] = None,
) -> None:
    """Generate a synthetic retailer: two years of orders, clickstream, stockouts, images and ground truth."""
    from shelfwise.config import settings
    from shelfwise.world import generate_world, scale_spec

    try:
        scale_spec(scale)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scale") from None
    out_dir = out or settings().work_dir / "worlds" / f"{scale}-{seed}"
    columns = (TextColumn("{task.description:<36}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"))
    try:
        with Progress(*columns, TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task("starting", total=1.0)
            summary = generate_world(
                scale, seed, out_dir, progress=lambda stage, done: bar.update(task, description=stage, completed=done)
            )
    except FileExistsError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    table = Table(title=f"world {summary.scale} seed {summary.seed}: {summary.start_date} .. {summary.end_date}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.rows.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    total = sum(summary.rows.values())
    console.print(f"world {summary.scale}: {total:,} rows in {summary.seconds:.1f} s -> {summary.out_dir}")
