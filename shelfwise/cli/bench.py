"""`shelfwise bench ...`: every benchmark prints a table and ends with one line of its key figures.

The benchmarks live in `shelfwise.bench.<name>` and import their heavy libraries inside the command.
"""

from __future__ import annotations

import typer

from shelfwise.bench import (
    churn,
    cold_start,
    forecast,
    glue,
    inventory,
    knn,
    launches,
    serving,
    serving_visual,
    visual,
    world,
)

app = typer.Typer(no_args_is_help=True)
app.command("world")(world.command)
app.command("churn")(churn.command)
app.command("forecast")(forecast.command)
app.command("inventory")(inventory.command)
app.command("launches")(launches.command)
app.command("cold-start")(cold_start.command)
app.command("knn")(knn.command)
app.command("visual")(visual.command)
serving.app.command("visual")(serving_visual.command)
app.add_typer(serving.app, name="serving", help="Latency of the API handlers against the raw model.")
app.add_typer(glue.app, name="glue", help="Throughput of Glue jobs on local Spark.")
