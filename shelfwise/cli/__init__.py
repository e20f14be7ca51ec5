"""The `shelfwise` command line: one sub-command group per part of the system.

Each group lives in its own module and imports heavy libraries (Spark, XGBoost, CDK) only inside its commands,
so `shelfwise --help` stays fast.
"""

from __future__ import annotations

import typer

from shelfwise.cli import api, bench, demo, glue, lake, pipeline, world

app = typer.Typer(
    name="shelfwise",
    help="Retail machine learning on AWS, runnable on one machine.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(world.app, name="world", help="Generate a synthetic retailer or load a real data set.")
app.add_typer(lake.app, name="lake", help="Inspect the S3 data lake.")
app.add_typer(glue.app, name="glue", help="Run Glue jobs on local Spark.")
app.add_typer(pipeline.app, name="pipeline", help="Run SageMaker pipelines locally.")
app.add_typer(bench.app, name="bench", help="Benchmarks: each prints a table and a line of key figures.")
app.command("api")(api.serve)
app.command("demo")(demo.run)
