"""`shelfwise pipeline ...`: run a domain's SageMaker pipelines locally against the lake, or print a definition.

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


class Kind(StrEnum):
    training = "training"
    scoring = "scoring"


NameArgument = Annotated[str, typer.Argument(help="The pipeline: a domain with one (`churn`, `demand`).")]


@app.command("run")
def run(
    name: NameArgument,
    kind: Annotated[Kind, typer.Option(help="training (gate, register) or scoring (newest approved model).")] = (
        Kind.training
    ),
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="Override a pipeline parameter: NAME=VALUE.")
    ] = None,
    run_date: Annotated[
        str | None,
        typer.Option(
            help="The date (YYYY-MM-DD) of the feature partitions the daily chain would pass: scoring gets the "
            "newest approved model on them; training takes them where the pipeline learns from the day's data."
        ),
    ] = None,
) -> None:
    """Run a pipeline's steps locally (same scripts, same gate); training registers the model if it passes,
    scoring batch-scores a serving partition with the newest approved model."""
    from botocore.exceptions import BotoCoreError, ClientError

    from shelfwise.config import ConfigError
    from shelfwise.domains import UnknownDomainError, pipeline
    from shelfwise.lake import Lake
    from shelfwise.pipelines.local import run_pipeline, score_with_newest_approved, train_on_run_date
    from shelfwise.pipelines.registry import NoApprovedModelError

    try:
        spec = pipeline(name)
        overrides = parse_params(param or [])
        lake = Lake()
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(f"pipeline {name}", total=1.0)

            def progress(stage: str, done: float) -> None:
                bar.update(task, description=stage, completed=done)

            if kind is Kind.scoring and run_date is not None:
                result, _ = score_with_newest_approved(lake, spec, run_date, progress)
            elif run_date is not None:
                result = train_on_run_date(lake, spec, run_date, overrides, progress)
            else:
                result = run_pipeline(lake, spec, kind=kind.value, params=overrides, progress=progress)
    except (ConfigError, ValueError, UnknownDomainError, NoApprovedModelError) as exc:
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
    name: NameArgument,
    kind: Annotated[Kind, typer.Option(help="Which of the domain's two pipelines.")] = Kind.training,
    out: Annotated[Path | None, typer.Option(help="Write the JSON here instead of printing it.")] = None,
) -> None:
    """Print a SageMaker pipeline definition built offline for the configured lake (no AWS call)."""
    from shelfwise.domains import UnknownDomainError, pipeline
    from shelfwise.lake import Lake
    from shelfwise.pipelines.local import local_spec
    from shelfwise.pipelines.sdk import pipeline_definition

    try:
        spec = local_spec(Lake(), pipeline(name), kind.value)
    except UnknownDomainError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    text = pipeline_definition(spec)
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
    steps = Table(title=f"{result.pipeline} {result.kind} run {result.run_id}", title_justify="left")
    steps.add_column("step")
    steps.add_column("status")
    steps.add_column("seconds", justify="right")
    steps.add_column("detail", overflow="fold")
    for step in result.steps:
        colour = "green" if step.status == "Succeeded" else "red"
        steps.add_row(step.name, f"[{colour}]{step.status}[/]", f"{step.seconds:.1f}", step.detail[:160])
    console.print(steps)
    if result.metrics:
        console.print(metrics_table(result.pipeline, result.metrics))
    if result.status == "Succeeded":
        done = f"model {result.model_version} registered as {result.model_package_arn}; artifact {result.artifact_key}"
        if result.kind == "scoring":
            done = f"predictions {result.predictions_prefix}"
        console.print(f"[green]Succeeded[/]: {done}")
    else:
        console.print(f"[red]Failed[/]: {result.failure_reason}")


def metrics_table(model: str, evaluation: dict[str, object]) -> Table:
    """The candidate and its baselines on the held-out cutoff (`evaluation.json`: the model's metrics under its
    pipeline's name, the baselines under `baselines`)."""
    figures = evaluation.get(model)
    if isinstance(figures, dict) and "auc" not in figures:
        return figures_table(model, evaluation)
    table = Table(title=f"held-out cutoff {evaluation.get('cutoff')}, n={evaluation.get('n')}", title_justify="left")
    for column in ("model", "AUC", "PR-AUC", "Brier", "top-decile lift"):
        table.add_column(column, justify="left" if column == "model" else "right")
    baselines = evaluation.get("baselines", {})
    rows = {model: evaluation.get(model, {}), **(baselines if isinstance(baselines, dict) else {})}
    for name, values in rows.items():
        if isinstance(values, dict) and values:
            table.add_row(
                name, *(f"{values[k]:.4f}" for k in ("auc", "pr_auc", "brier")), f"{values['top_decile_lift']:.2f}"
            )
    return table


def figures_table(model: str, evaluation: dict[str, object]) -> Table:
    """The candidate's figures beside each baseline's, whatever they are named (`evaluation.json`: the model's under
    its pipeline's name, the baselines' under `baselines`, each a mapping of names to numbers)."""
    baselines = evaluation.get("baselines", {})
    rows = {model: evaluation.get(model, {}), **(baselines if isinstance(baselines, dict) else {})}
    rows = {name: values for name, values in rows.items() if isinstance(values, dict) and values}
    names = [k for k, v in rows[model].items() if isinstance(v, int | float)]
    table = Table(title=f"{model}: the candidate and its baselines on held-out data", title_justify="left")
    for column in ("model", *names):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, values in rows.items():
        table.add_row(name, *(f"{values[k]:.4f}" if isinstance(values.get(k), int | float) else "-" for k in names))
    return table
