"""`shelfwise pipeline ...`: run a SageMaker pipeline locally against the lake, or print its definition.

`run` reaches the lake at the configured endpoint (locally the moto server of `shelfwise lake serve`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from shelfwise.pipelines.local import PipelineRun

app = typer.Typer(no_args_is_help=True)
console = Console()


class PipelineName(StrEnum):
    churn = "churn"


@app.command("run")
def run(
    name: Annotated[PipelineName, typer.Argument(help="The pipeline to run.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Override a pipeline parameter: NAME=VALUE.")
    ] = None,
) -> None:
    """Run the pipeline's steps locally (same scripts, same gate) and register the model if it passes."""
    from botocore.exceptions import BotoCoreError, ClientError

    from shelfwise.config import ConfigError
    from shelfwise.lake import Lake
    from shelfwise.pipelines.local import run_churn_pipeline

    try:
        overrides = parse_params(param or [])
        lake = Lake()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"pipeline {name.value}", total=1.0)
            result = run_churn_pipeline(
                lake, overrides, progress=lambda stage, done: bar.update(task, description=stage, completed=done)
            )
    except (ConfigError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    except (BotoCoreError, ClientError) as exc:
        console.print(f"[red]error:[/] cannot reach the lake or the model registry: {exc}")
        raise typer.Exit(1) from None
    print_run(result)
    if result.status != "Succeeded":
        raise typer.Exit(1)


@app.command("definition")
def definition(
    name: Annotated[PipelineName, typer.Argument(help="The pipeline.")],
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of printing it.")] = None,
) -> None:
    """Print the SageMaker pipeline definition built offline for the configured lake (no AWS call)."""
    from shelfwise.lake import Lake
    from shelfwise.pipelines.churn import churn_pipeline_definition
    from shelfwise.pipelines.local import local_pipeline_config

    text = churn_pipeline_definition(local_pipeline_config(Lake()))
    if out is None:
        console.print_json(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out} ({len(text):,} bytes)")


def parse_params(items: list[str]) -> dict[str, float | str]:
    """NAME=VALUE pairs; numbers become floats (the type checks happen against the pipeline's parameters)."""
    params: dict[str, float | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name] = float(value)
        except ValueError:
            params[name] = value
    return params


def print_run(result: PipelineRun) -> None:
    steps = Table(title=f"churn pipeline run {result.run_id}", title_justify="left")
    steps.add_column("step")
    steps.add_column("status")
    steps.add_column("seconds", justify="right")
    steps.add_column("detail", overflow="fold")
    for step in result.steps:
        colour = "green" if step.status == "Succeeded" else "red"
        steps.add_row(step.name, f"[{colour}]{step.status}[/]", f"{step.seconds:.1f}", step.detail[:160])
    console.print(steps)
    if result.metrics:
        console.print(metrics_table(result.metrics))
    if result.status == "Succeeded":
        console.print(
            f"[green]Succeeded[/]: model {result.model_version} registered as {result.model_package_arn}; "
            f"artifact {result.artifact_key}; predictions {result.predictions_prefix}"
        )
    else:
        console.print(f"[red]Failed[/]: {result.failure_reason}")


def metrics_table(evaluation: dict[str, object]) -> Table:
    """The model and its baselines on the held-out cutoff."""
    table = Table(title=f"held-out cutoff {evaluation.get('cutoff')}, n={evaluation.get('n')}", title_justify="left")
    for column in ("model", "AUC", "PR-AUC", "Brier", "top-decile lift"):
        table.add_column(column, justify="left" if column == "model" else "right")
    baselines = evaluation.get("baselines", {})
    rows = {"xgboost": evaluation.get("churn", {}), **(baselines if isinstance(baselines, dict) else {})}
    for model, values in rows.items():
        if isinstance(values, dict):
            table.add_row(
                model, *(f"{values[k]:.4f}" for k in ("auc", "pr_auc", "brier")), f"{values['top_decile_lift']:.2f}"
            )
    return table
