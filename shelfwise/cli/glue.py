"""`shelfwise glue ...`: list the Glue jobs and run one on local Spark against the lake."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(no_args_is_help=True)
console = Console()

NO_ENDPOINT = (
    "AWS_ENDPOINT_URL is not set, so there is no local lake to run against. The jobs read and write the lake "
    "(S3): run `shelfwise lake serve` in another terminal and export the variables it prints, or run "
    "`shelfwise demo`, which runs the jobs inside its own local AWS. To run against a real AWS account, pass "
    "--real-aws."
)


@app.command("jobs")
def jobs() -> None:
    """List the Glue jobs with their lake inputs, outputs and options."""
    from shelfwise.domains import DOMAINS

    table = Table(title="Glue jobs")
    for column in ("domain", "job", "reads", "writes", "options"):
        table.add_column(column)
    for domain in DOMAINS:
        for spec in domain.glue_jobs:
            table.add_row(
                domain.name,
                f"{spec.name}\n[dim]{spec.description}[/]",
                "\n".join(spec.inputs.values()),
                "\n".join([*spec.outputs.values(), *([f"{spec.state} (state)"] if spec.state else [])]),
                "\n".join(f"--{o}" for o in spec.options),
            )
    console.print(table)


@app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="A job of `shelfwise glue jobs`, e.g. curate_orders.")],
    real_aws: Annotated[bool, typer.Option("--real-aws", help="Use the AWS account of your credentials.")] = False,
) -> None:
    """Run JOB's entry script on local Spark with the lake's inputs; extra `--name value` pairs go to the job."""
    from shelfwise.config import settings
    from shelfwise.glue_local import GlueJobError, JobArgumentsError, UnknownJobError, check_args, job_spec, run_job
    from shelfwise.lake import Lake

    try:
        spec = job_spec(job)
        args = parse_extra_args(ctx.args)
        check_args(spec, args)
    except (UnknownJobError, JobArgumentsError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    if settings().aws_endpoint_url is None and not real_aws:
        console.print(f"[red]error:[/] {NO_ENDPOINT}")
        raise typer.Exit(2)
    columns = (SpinnerColumn(), TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
            result = run_job(job, Lake(), args, progress=progress)
    except GlueJobError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    table = Table(title=f"{job}: {result.seconds:.1f} s")
    table.add_column("count")
    table.add_column("value", justify="right")
    for name, value in result.counts.items():
        table.add_row(name, f"{value:,}")
    console.print(table)
    console.print("wrote " + ", ".join(result.outputs))


def parse_extra_args(tokens: list[str]) -> dict[str, str]:
    """`["--a", "1", "--b=2"]` -> `{"a": "1", "b": "2"}`; a `ValueError` naming any token that is not a pair."""
    args: dict[str, str] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if not token.startswith("--") or len(token) < 3:
            raise ValueError(f"expected --name value, got {token!r}")
        name, equals, value = token[2:].partition("=")
        if not equals:
            if position + 1 >= len(tokens):
                raise ValueError(f"--{name} has no value")
            position += 1
            value = tokens[position]
        args[name] = value
        position += 1
    return args
