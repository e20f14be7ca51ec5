"""`shelfwise world load ...`: map a public data set into a world folder and print the row accounting."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from shelfwise.loaders.report import LoadReport

app = typer.Typer(no_args_is_help=True)
console = Console()

SourceOption = Annotated[Path | None, typer.Option("--source", help="The data set file (default: ../shared/data/...).")]
OutOption = Annotated[Path | None, typer.Option("--out", help="The world folder (default: <work_dir>/worlds/<kind>).")]


@app.command("online-retail")
def online_retail(source: SourceOption = None, out: OutOption = None) -> None:
    """UCI Online Retail: orders, returns, products, customers, one online store per country."""
    from shelfwise.loaders.online_retail import KIND, load_online_retail
    from shelfwise.loaders.sources import ONLINE_RETAIL_CSV

    _run(load_online_retail, source or ONLINE_RETAIL_CSV, out, KIND)


@app.command("fashion-mnist")
def fashion_mnist(source: SourceOption = None, out: OutOption = None) -> None:
    """Fashion-MNIST: a catalogue of 1,000 products with their 28x28 grey images."""
    from shelfwise.loaders.fashion_mnist import KIND, load_fashion_mnist
    from shelfwise.loaders.sources import FASHION_MNIST_CSV

    _run(load_fashion_mnist, source or FASHION_MNIST_CSV, out, KIND)


@app.command("orders-csv")
def orders_csv(
    file: Annotated[
        Path,
        typer.Argument(
            help="Your order lines as CSV: order_id, customer_id, ts, sku, quantity, unit_price "
            "[, store_id, channel]; other columns are ignored.",
            exists=True,
            dir_okay=False,
        ),
    ],
    out: OutOption = None,
) -> None:
    """Your own transactions: orders, returns, stores, products and customers, ids kept as given."""
    from shelfwise.loaders.orders_csv import KIND, load_orders_csv

    _run(load_orders_csv, file, out, KIND)


@app.command("sales-csv")
def sales_csv(
    file: Annotated[
        Path,
        typer.Argument(
            help="Your daily sales as CSV: date, store_id, sku, units [, unit_price, promo, category, department, "
            "region]; other columns are ignored.",
            exists=True,
            dir_okay=False,
        ),
    ],
    out: OutOption = None,
    regional_holidays: Annotated[
        Path | None,
        typer.Option(
            help="Your regions' public holidays as CSV: region, date [, name]; the forecasts learn their lift.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Your own daily sales per store and SKU: sales, returns, listings, stores and products, ids kept as given."""
    from shelfwise.loaders.sales_csv import KIND, load_sales_csv

    _run(functools.partial(load_sales_csv, holidays=regional_holidays), file, out, KIND)


def _run(loader: Callable[[Path, Path], LoadReport], source: Path, out: Path | None, kind: str) -> None:
    from shelfwise.config import settings

    if not source.is_file():
        console.print(f"[red]error:[/] source file {source} does not exist (pass --source PATH)")
        raise typer.Exit(2)
    out_dir = out or settings().work_dir / "worlds" / kind
    try:
        with console.status(f"Loading {source.name} into {out_dir} ..."):
            report = loader(source, out_dir)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    for accounting in (report, *report.companions):
        console.print(accounting.table())
    console.print(
        f"world {kind}: {report.loaded_rows:,} rows loaded, {report.quarantined_rows:,} quarantined -> {out_dir}"
    )
