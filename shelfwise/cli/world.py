"""`shelfwise world ...`: placeholder until the generator lands."""

from __future__ import annotations

import typer

from shelfwise.cli import world_load

app = typer.Typer(no_args_is_help=True)
app.add_typer(world_load.app, name="load", help="Load a real data set into a world folder.")
