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
    scale: str = typer.Option("demo", help="World scale: small, demo, default or large."),
    seed: int = typer.Option(7, help="Seed of the synthetic world."),
    stop_after: str | None = typer.Option(None, help="Stop after this stage (world, ingest, curate_orders, ...)."),
    serve: bool = typer.Option(False, help="Keep the API running on 127.0.0.1 until Ctrl-C."),
    param: list[str] = typer.Option(  # noqa: B008 - typer declares options this way
        [], "--param", "-p", help="Override a training pipeline parameter: DOMAIN.NAME=VALUE (repeatable)."
    ),
) -> None:
    """Run the whole system locally, end to end: world, lake, Glue jobs, each domain's pipelines, online store, API."""
    from shelfwise.demo import DemoOptions, run_demo, stages

    # The handlers' JSON logs and metric lines are for CloudWatch; here the summary tables say what happened.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    from shelfwise.world import SCALES

    if scale not in SCALES:
        raise typer.BadParameter(f"unknown scale {scale!r}; valid scales: {', '.join(SCALES)}")
    if stop_after is not None and stop_after not in stages():
        raise typer.BadParameter(f"unknown stage {stop_after!r}; valid stages: {', '.join(stages())}")
    options = DemoOptions(scale=scale, seed=seed, stop_after=stop_after, training_params=_domain_params(param))
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


def _domain_params(items: list[str]) -> dict[str, dict[str, float | str]]:
    from shelfwise.cli.pipeline import parse_params
    from shelfwise.domains import DOMAINS

    names = {domain.name for domain in DOMAINS if domain.pipeline is not None}
    by_domain: dict[str, dict[str, float | str]] = {}
    for item in items:
        domain, sep, rest = item.partition(".")
        if not sep or domain not in names:
            raise typer.BadParameter(f"--param {item!r}: expected DOMAIN.NAME=VALUE with DOMAIN one of {sorted(names)}")
        try:
            by_domain.setdefault(domain, {}).update(parse_params([rest]))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    return by_domain


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
    for report in result.reports:
        _print_report(report)
    for failure in result.failures:
        console.print(f"[bold red]{failure}[/]")

    zones = Table(title="Lake", show_edge=False)
    zones.add_column("zone")
    zones.add_column("rows", justify="right")
    zones.add_column("objects", justify="right")
    zones.add_column("MB", justify="right")
    for zone, (objects, size) in result.zones.items():
        rows = result.zone_rows.get(zone)
        zones.add_row(zone, "-" if rows is None else f"{rows:,}", f"{objects:,}", f"{size / 1e6:,.1f}")
    console.print(zones)

    stages = Table(title=f"Stages (run date {result.run_date})", show_edge=False)
    stages.add_column("stage")
    stages.add_column("seconds", justify="right")
    stages.add_column("detail")
    for stage in result.stages:
        stages.add_row(stage.name, f"{stage.seconds:,.1f}", stage.detail)
    stages.add_row("[bold]total", f"[bold]{sum(s.seconds for s in result.stages):,.1f}", "")
    console.print(stages)


def _print_report(report: Any) -> None:
    table = Table(title=report.title, show_edge=False)
    for index, column in enumerate(report.columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in report.rows:
        table.add_row(*row)
    console.print(table)
    for note in report.notes:
        console.print(note)
    if report.picture is not None:
        console.print(f"Picture: [bold]{report.picture}[/]")


def _print_requests(exchanges: list[Any]) -> None:
    table = Table(title="API requests (local API Gateway -> Lambda handler)", show_edge=False, show_lines=True)
    table.add_column("request")
    table.add_column("status", justify="right")
    table.add_column("answer")
    for exchange in exchanges:
        request = f"{exchange.method} {exchange.path}" + (f"\n[dim]{exchange.note}[/]" if exchange.note else "")
        table.add_row(request, str(exchange.status), _summarise(exchange.body))
    console.print(table)


def _summarise(body: dict[str, Any]) -> str:
    if "error" in body:
        return json.dumps(body["error"])
    if "results" in body:  # a visual search: the products found, closest first
        found = ", ".join(f"{r['sku']} ({r['category']}) {r['score']:.3f}" for r in body["results"])
        return f"{found}\nmodel {body.get('model_version', '?')}"
    if "probability" not in body:
        return json.dumps(body)[:200]
    head = f"probability {body['probability']:.3f} [{body.get('risk_band', '?')}]"
    if body.get("cold_start"):
        return head + " cold start: the prior measured on entities without history"
    reasons = ", ".join(
        f"{r['feature']}={_fmt(r['value'])} (+{r['contribution']:.2f})" for r in body.get("reasons", [])
    )
    return f"{head} model {body.get('model_version', '?')}\n{reasons}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1000 else f"{value:,.0f}"
    return "-" if value is None else str(value)
