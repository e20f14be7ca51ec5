"""`shelfwise demo`: the whole system on this machine, with progress and a summary."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


def run(
    scale: str = typer.Option("default", help="World scale: small, default or large."),
    seed: int = typer.Option(7, help="Seed of the synthetic world."),
    stop_after: str | None = typer.Option(None, help="Stop after this stage (world, ingest, curate_orders, ...)."),
    serve: bool = typer.Option(False, help="Keep the API running on 127.0.0.1 until Ctrl-C."),
) -> None:
    """Run the whole system locally, end to end: world, lake, Glue jobs, churn pipeline, online store, API."""
    from shelfwise.demo import STAGES, DemoOptions, run_demo

    # The handlers' JSON logs and metric lines are for CloudWatch; here the summary tables say what happened.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from shelfwise.world import SCALES

    if scale not in SCALES:
        raise typer.BadParameter(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    if stop_after is not None and stop_after not in STAGES:
        raise typer.BadParameter(f"unknown stage {stop_after!r}; valid stages: {', '.join(STAGES)}")
    options = DemoOptions(scale=scale, seed=seed, stop_after=stop_after)
    with Progress(
        TextColumn("[bold]{task.description:<28}"), BarColumn(), TimeElapsedColumn(), console=console, transient=True
    ) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, fraction: float) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=1.0)
            bar.update(tasks[stage], completed=min(max(fraction, 0.0), 1.0))

        result = run_demo(options, progress=progress, serve=_wait_for_interrupt if serve else None)
    _print_result(result)


def _wait_for_interrupt(url: str) -> None:
    console.print(
        f"\n[bold green]API on {url}[/]  (OpenAPI: {url}/openapi.json, Swagger UI: {url}/docs). Ctrl-C stops."
    )
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")


def _print_result(result: Any) -> None:
    if result.exchanges:
        _print_requests(result.exchanges)
    if result.metrics:
        _print_metrics(result.metrics, result.truth_auc)
    if result.report_path is not None:
        console.print(f"Calibration and cumulative gains on the held-out cutoff: [bold]{result.report_path}[/]")
    if result.failure_reason:
        console.print(f"[bold red]Pipeline gate failed:[/] {result.failure_reason}")

    zones = Table(title="Lake", show_edge=False)
    zones.add_column("zone")
    zones.add_column("rows", justify="right")
    zones.add_column("objects", justify="right")
    zones.add_column("MB", justify="right")
    for zone, (objects, size) in result.zones.items():
        rows = result.zone_rows.get(zone)
        zones.add_row(zone, "-" if rows is None else f"{rows:,}", f"{objects:,}", f"{size / 1e6:,.1f}")
    console.print(zones)

    stages = Table(title="Stages", show_edge=False)
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    stages.add_column("detail")
    for stage in result.stages:
        stages.add_row(stage.name, f"{stage.seconds:,.1f}", stage.detail)
    stages.add_row("[bold]total", f"[bold]{sum(s.seconds for s in result.stages):,.1f}", "")
    console.print(stages)


def _print_metrics(metrics: dict[str, Any], truth_auc: float | None) -> None:
    table = Table(title="Churn model on the held-out cutoff", show_edge=False)
    for column in ("model", "AUC", "PR-AUC", "Brier", "top-decile lift"):
        table.add_column(column, justify="right" if column != "model" else "left")
    rows = [("XGBoost (registered)", metrics.get("churn", {}))]
    rows += [(f"baseline: {name}", values) for name, values in metrics.get("baselines", {}).items()]
    for name, values in rows:
        table.add_row(name, *(_fmt(values.get(key)) for key in ("auc", "pr_auc", "brier", "top_decile_lift")))
    console.print(table)
    if truth_auc is not None:
        console.print(
            f"AUC against the synthetic world's true churn (not the observed label): [bold]{truth_auc:.3f}[/]"
        )


def _print_requests(exchanges: list[Any]) -> None:
    table = Table(title="API requests (local API Gateway -> Lambda handler)", show_edge=False, show_lines=True)
    table.add_column("request")
    table.add_column("status", justify="right")
    table.add_column("answer")
    for exchange in exchanges:
        table.add_row(f"{exchange.method} {exchange.path}", str(exchange.status), _summarise(exchange.body))
    console.print(table)


def _summarise(body: dict[str, Any]) -> str:
    if "error" in body:
        return json.dumps(body["error"])
    if "probability" not in body:
        return json.dumps(body)[:200]
    head = f"p(churn)={body['probability']:.3f} [{body.get('risk_band', '?')}]"
    if body.get("cold_start"):
        return head + " cold start: population prior"
    reasons = ", ".join(
        f"{r['feature']}={_fmt(r['value'])} (+{r['contribution']:.2f})" for r in body.get("reasons", [])
    )
    return f"{head} model {body.get('model_version', '?')}\n{reasons}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return "-" if value is None else str(value)
