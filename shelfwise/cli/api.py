"""`shelfwise api`: the Lambda handlers on 127.0.0.1, behind a local stand-in for API Gateway."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def serve(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0 = any free port).")
    ] = 8000,
) -> None:
    """Serve every Lambda handler on 127.0.0.1 as API Gateway would, against the local AWS of AWS_ENDPOINT_URL."""
    from shelfwise.config import settings

    endpoint = settings().aws_endpoint_url
    if endpoint is None:
        console.print(
            "[bold red]No local AWS:[/] AWS_ENDPOINT_URL is not set, so the handlers would call real AWS.\n"
            "The API reads the model registry, the lake and the online store of a populated local AWS: run "
            "`shelfwise demo --serve` (which builds the data and keeps the API up), or point AWS_ENDPOINT_URL at a "
            "running moto server that holds them."
        )
        raise typer.Exit(2)
    from shelfwise.local_api import iter_routes, local_lambdas, start_local_api

    lambdas = local_lambdas()
    try:
        api = start_local_api(port, lambdas, log=console.print)
    except OSError as exc:
        console.print(f"[bold red]Cannot listen on 127.0.0.1:{port}:[/] {exc.strerror}")
        raise typer.Exit(1) from None
    console.print(f"[bold green]API on {api.url}[/] (local AWS at {endpoint})")
    for line in iter_routes(lambdas.routes):
        console.print(f"  {line}")
    console.print(f"  OpenAPI: {api.url}/openapi.json   Swagger UI: {api.url}/docs   Ctrl-C stops.")
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        api.stop()
