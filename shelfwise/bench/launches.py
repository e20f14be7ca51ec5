"""`shelfwise bench launches --data world|world:DIR`: the attribute-based cold-start model on the world's launches.

At each of the last `--windows` windows of 28 days, the store x SKU series launched in the four weeks before the
window (1 to 27 days of sales: the batch forecast's cold starts) and those launching inside it (known by their
attributes and launch date only) are forecast from the history before the window by the attribute model
(`shelfwise.demand.cold_start`) and by the category average of the same store, and optionally by DeepAR trained
before the first window (what the batch forecast gave cold starts before), then scored on the window against the
true demand the stockouts hid and against the sales (`shelfwise.demand.cold_start_backtest`).
"""

from __future__ import annotations

import datetime as dt
import time
import warnings
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from shelfwise.bench.forecast import DEFAULT_WORLD, demand_frames, resolve_world, true_demand, world_holidays
from shelfwise.demand.cold_start_backtest import (
    ALL,
    ATTRIBUTE_MODEL,
    BEFORE,
    CATEGORY_AVERAGE,
    GROUPS,
    INSIDE,
    Forecaster,
    LaunchBacktest,
)
from shelfwise.demand.series import DemandPanel

DEEPAR = "DeepAR (cold starts until now)"


def launches_table(result: LaunchBacktest, against: str) -> Table:
    table = Table(
        title=f"Launches in {len(result.cutoffs)} windows of 28 days against {against}: "
        "wQL, MASE, RMSSE and bias lower is better, 80% coverage target 0.80"
    )
    for column in ("launches", "model", "series (SKUs)", "wQL", "MASE", "RMSSE", "coverage 80%", "bias"):
        table.add_column(column, justify="left" if column in ("launches", "model") else "right")
    for group, models in result.scores[against].items():
        best = min(s.wql for s in models.values())
        for number, (model, s) in enumerate(models.items()):
            wql = f"{s.wql:.3f}"
            table.add_row(
                group if number == 0 else "",
                model,
                f"{result.series[group]:,} ({result.skus[group]})" if number == 0 else "",
                f"[bold]{wql}[/bold]" if s.wql == best else wql,
                _figure(s.mase),
                _figure(s.rmsse),
                f"{s.coverage_80:.2f}",
                f"{s.bias:+.2f}",
                end_section=number == len(models) - 1,
            )
    return table


def _figure(value: float) -> str:
    # MASE and RMSSE need a history to scale by: a series launching inside its window has none.
    return "-" if np.isnan(value) else f"{value:.2f}"


def key_line(result: LaunchBacktest) -> str:
    against = next(iter(result.scores))
    scores = result.scores[against]

    def wql(group: str, model: str) -> float:
        return scores[group][model].wql if group in scores else float("nan")

    mine, baseline = wql(ALL, ATTRIBUTE_MODEL), wql(ALL, CATEGORY_AVERAGE)
    parts = [
        f"launches: {result.series[ALL]:,} store x SKU launches ({result.skus[ALL]} SKUs) in {len(result.cutoffs)} "
        f"windows from {result.cutoffs[0]}; wQL against {against}: attribute model {mine:.3f} vs category average "
        f"{baseline:.3f} ({mine / baseline - 1:+.1%})",
        f"launched 1-27 days before {wql(BEFORE, ATTRIBUTE_MODEL):.3f} vs {wql(BEFORE, CATEGORY_AVERAGE):.3f}",
        f"launching in the window {wql(INSIDE, ATTRIBUTE_MODEL):.3f} vs {wql(INSIDE, CATEGORY_AVERAGE):.3f}",
        f"bias {scores[ALL][ATTRIBUTE_MODEL].bias:+.2f} vs {scores[ALL][CATEGORY_AVERAGE].bias:+.2f}",
    ]
    if DEEPAR in scores[ALL]:
        parts.append(f"DeepAR {wql(ALL, DEEPAR):.3f}")
    parts.append(f"fit {result.seconds['fit']:.1f} s, predict {result.seconds['predict']:.1f} s in all")
    return "; ".join(parts)


def deepar_forecaster(panel: DemandPanel, first_cutoff: int, epochs: int, n_paths: int, seed: int) -> Forecaster:
    """DeepAR trained on the series with four weeks of history before the first window, as the backtest trains it;
    it then forecasts every window's launches from the history before that window."""
    from shelfwise.config import settings
    from shelfwise.demand.models import DeepARSettings, deepar_paths, train_deepar

    history = panel.head(first_cutoff)
    work = settings().work_dir / "bench" / "launches"
    work.mkdir(parents=True, exist_ok=True)
    trained = history.select(history.start_index <= first_cutoff - 28)
    predictor, codes = train_deepar(trained, DeepARSettings(epochs=epochs, seed=seed), work)

    def forecast(_: DemandPanel, series: DemandPanel) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's deprecation notes, one per batch
            return deepar_paths(predictor, codes, series, n_paths, seed)

    return forecast


def command(
    data: Annotated[str, typer.Option("--data", help=f"{DEFAULT_WORLD} or world:DIR (a synthetic world).")] = (
        DEFAULT_WORLD
    ),
    windows: Annotated[int, typer.Option(min=1, help="Windows of 28 days, ending with the data.")] = 8,
    paths: Annotated[int, typer.Option(min=20, help="Sample paths per series.")] = 200,
    deepar_epochs: Annotated[
        int, typer.Option(min=0, help="Also score DeepAR trained this many epochs before the first window (0: not).")
    ] = 0,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """wQL, MASE, RMSSE, 80% coverage and bias of the attribute model and the category average on launches."""
    from shelfwise.demand.backtest import window_cutoffs
    from shelfwise.demand.cold_start_backtest import run_launch_backtest
    from shelfwise.demand.models import HORIZON
    from shelfwise.demand.series import build_panel

    console = Console()
    label, world = resolve_world(data)
    started = time.perf_counter()
    with console.status("demand features (Spark)"):
        daily, static = demand_frames(world)
        panel = build_panel(daily, static, world_holidays(world))
        truth = true_demand(world, panel)
    console.print(
        f"{label}: {len(panel.keys):,} location x SKU series, {panel.start} .. {panel.end - dt.timedelta(days=1)} "
        f"(features {time.perf_counter() - started:.0f} s)"
    )
    others: dict[str, Forecaster] = {}
    if deepar_epochs:
        first = (window_cutoffs(panel.end, HORIZON, windows)[0] - panel.start).days
        with console.status(f"DeepAR ({deepar_epochs} epochs) before the first window"):
            started = time.perf_counter()
            others[DEEPAR] = deepar_forecaster(panel, first, deepar_epochs, paths, seed)
        console.print(f"DeepAR trained in {time.perf_counter() - started:.0f} s")
    with console.status("forecasting the launches of every window"):
        result = run_launch_backtest(panel, truth, windows=windows, n_paths=paths, seed=seed, others=others)
    for against in result.scores:
        console.print(launches_table(result, against))
    missing = [g for g in GROUPS if g not in result.scores[next(iter(result.scores))]]
    if missing:
        console.print(f"no {', '.join(missing)} in these windows")
    console.print(key_line(result), soft_wrap=True)
