"""`shelfwise bench inventory --data world|world:DIR`: ordering from the forecast against the textbook policy.

On the synthetic world's true demand over the last 28 days (what stockouts hid included), a sample of store x SKUs
replays two periodic-review order-up-to policies with lost sales (`shelfwise.demand.inventory_backtest`): the
service-level quantile of the forecast's cumulative demand against the textbook seasonal-naive mean plus
z x sigma x sqrt(L + R). The forecast is the one served (`shelfwise.demand.batch_forecast`): DeepAR, trained before
the window before, for every series on sale, reconciled location by location to last year's comparable days (unless
`--no-reconcile`), its paths widened by the spread factor fitted on the window before. Both policies know only what
was known on the window's eve.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from shelfwise.bench.forecast import DEFAULT_WORLD, demand_frames, resolve_world, true_demand, world_holidays
from shelfwise.demand.inventory_backtest import PolicyOutcome
from shelfwise.demand.series import DemandPanel

if TYPE_CHECKING:
    from shelfwise.demand.models import DeepAREnsemble, StaticCodes

SERVICE_LEVELS: tuple[float, ...] = (0.90, 0.95, 0.98)
POLICIES: tuple[str, str] = ("forecast", "textbook")


def inventory_table(outcomes: list[PolicyOutcome], lead_time: int, review: int) -> Table:
    table = Table(
        title=f"{outcomes[0].series:,} store x SKU, last 28 days of true demand: review every {review} days, "
        f"lead time {lead_time} days, lost sales"
    )
    for column in ("target", "policy", "cycle service", "fill rate", "avg units on hand", "lost units", "cost"):
        table.add_column(column, justify="right")
    for o in outcomes:
        table.add_row(
            f"{o.service_level:.2f}",
            "forecast quantile" if o.policy == "forecast" else "textbook (normal)",
            f"{o.cycle_service_level:.3f}",
            f"{o.fill_rate:.3f}",
            f"{o.average_on_hand:,.0f}",
            f"{o.lost_sales:,.0f}",
            f"{o.total_cost:,.0f}",
        )
    return table


def key_line(outcomes: list[PolicyOutcome]) -> str:
    """Per target: the forecast policy's stock and lost sales as ratios of the textbook's, and both services."""
    parts = []
    for alpha in sorted({o.service_level for o in outcomes}):
        mine, textbook = (next(o for o in outcomes if o.service_level == alpha and o.policy == p) for p in POLICIES)
        parts.append(
            f"{alpha:.2f}: service {mine.cycle_service_level:.3f} vs {textbook.cycle_service_level:.3f}, "
            f"stock x{mine.average_on_hand / textbook.average_on_hand:.2f}, "
            f"lost sales x{mine.lost_sales / max(textbook.lost_sales, 1e-9):.2f}, "
            f"cost x{mine.total_cost / textbook.total_cost:.2f}"
        )
    return "inventory (forecast vs textbook): " + "; ".join(parts) + "; " + frontier_line(outcomes)


def textbook_stock_at(outcomes: list[PolicyOutcome], metric: str, value: float) -> float | None:
    """The textbook policy's average stock for an achieved `metric` of `value`, interpolated between its targets
    (None outside the range it achieved): what the same service costs in stock with the textbook policy."""
    textbook = sorted((getattr(o, metric), o.average_on_hand) for o in outcomes if o.policy == "textbook")
    achieved = [a for a, _ in textbook]
    if not achieved[0] <= value <= achieved[-1]:
        return None
    return float(np.interp(value, achieved, [stock for _, stock in textbook]))


def frontier_line(outcomes: list[PolicyOutcome]) -> str:
    """Per forecast row: its stock against the textbook's for the same achieved fill rate and cycle service."""
    parts = []
    for o in (o for o in outcomes if o.policy == "forecast"):
        for metric, label in (("fill_rate", "fill rate"), ("cycle_service_level", "cycle service")):
            textbook = textbook_stock_at(outcomes, metric, getattr(o, metric))
            if textbook is not None:
                parts.append(
                    f"{label} {getattr(o, metric):.3f} with x{o.average_on_hand / textbook:.2f} the textbook's stock"
                )
    return "at equal achieved service: " + ("; ".join(parts) if parts else "outside the textbook's range")


def eligible_series(panel: DemandPanel, first_cutoff: int, last_cutoff: int) -> np.ndarray:
    """Series with four weeks of history before the first window that are on sale on both windows' eves."""
    launched = panel.start_index <= first_cutoff - 28
    on_sale = np.isfinite(panel.units[:, first_cutoff - 1]) & np.isfinite(panel.units[:, last_cutoff - 1])
    return np.flatnonzero(launched & on_sale)


def served_sample(
    history: DemandPanel,
    sample: np.ndarray,
    deepar: tuple[DeepAREnsemble, StaticCodes],
    n_paths: int,
    seed: int,
    reconcile: bool,
    spread: float,
) -> np.ndarray:
    """The served paths (`served_paths`) of the `sample` rows of `history`, which must all be on sale on its last
    day; every series on sale is forecast, since the total they are reconciled to is theirs."""
    from shelfwise.demand.backtest import BOTTOM
    from shelfwise.demand.batch_forecast import forecast_active, served_paths

    batch = forecast_active(history, "deepar", deepar, n_paths, seed)
    paths = served_paths(batch, {BOTTOM: spread}, reconcile, seed)
    active = np.flatnonzero(np.isfinite(history.units[:, -1]))
    rows = np.searchsorted(active, sample)
    if not np.array_equal(active[np.minimum(rows, len(active) - 1)], sample):
        raise ValueError("every sampled series must be on sale on the history's last day")
    return paths[rows]


def command(
    data: Annotated[str, typer.Option("--data", help=f"{DEFAULT_WORLD} or world:DIR (a synthetic world).")] = (
        DEFAULT_WORLD
    ),
    series: Annotated[int, typer.Option(min=1, help="Store x SKU series replayed (a fixed random sample).")] = 1000,
    epochs: Annotated[int, typer.Option(min=1, help="DeepAR training epochs (of each network).")] = 10,
    networks: Annotated[int, typer.Option(min=1, help="DeepAR networks whose paths are pooled.")] = 3,
    lead_time: Annotated[int, typer.Option(min=0, help="Days from an order to its arrival.")] = 2,
    review: Annotated[int, typer.Option(min=1, help="Days between two orders.")] = 7,
    paths: Annotated[int, typer.Option(min=20, help="Sample paths per series.")] = 200,
    seed: Annotated[int, typer.Option()] = 0,
    reconcile: Annotated[
        bool, typer.Option(help="Reconcile the series to the forecast of the total, as the backtest chose to serve.")
    ] = True,
) -> None:
    """Cycle service, fill rate, stock, lost sales and cost of both policies at service levels 0.90, 0.95, 0.98."""
    from shelfwise.config import settings
    from shelfwise.demand.aggregation import fit_spread
    from shelfwise.demand.backtest import training_days
    from shelfwise.demand.inventory_backtest import compare_policies
    from shelfwise.demand.models import HORIZON, DeepARSettings, train_deepar
    from shelfwise.demand.series import build_panel

    if lead_time + review > HORIZON:
        raise typer.BadParameter(f"lead time + review must be at most {HORIZON} days", param_hint="--review")
    console = Console()
    label, world = resolve_world(data)
    with console.status("demand features (Spark)"):
        daily, static = demand_frames(world)
        panel = build_panel(daily, static, world_holidays(world))
        truth = true_demand(world, panel)
    if truth is None:
        raise typer.BadParameter(f"{label} has no true demand (truth/demand.parquet): use a synthetic world")
    calibration, last = panel.n_days - 2 * HORIZON, panel.n_days - HORIZON
    candidates = eligible_series(panel, calibration, last)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(candidates, size=min(series, len(candidates)), replace=False))
    work = settings().work_dir / "bench" / "inventory"
    with console.status(
        f"DeepAR ({networks} x {epochs} epochs) on {len(panel.keys):,} series before the calibration window"
    ):
        started = time.perf_counter()
        history = panel.head(training_days(panel.n_days, windows=1))
        predictor, codes = train_deepar(history, DeepARSettings(epochs=epochs, seed=seed, networks=networks), work)
        training_s = time.perf_counter() - started
    with console.status("forecasting every series on sale, on the calibration window's eve and the last one's"):
        before = served_sample(panel.head(calibration), sample, (predictor, codes), paths, seed, reconcile, 1.0)
        spread = fit_spread(before, panel.target[sample, calibration:last])
        forecast = served_sample(panel.head(last), sample, (predictor, codes), paths, seed, reconcile, spread)
    histories = [u[s:last] for u, s in zip(np.nan_to_num(panel.units[sample]), panel.start_index[sample], strict=True)]
    outcomes = compare_policies(forecast, truth[sample, last:], histories, SERVICE_LEVELS, lead_time, review)
    console.print(
        f"{label}: {len(sample):,} of {len(candidates):,} store x SKUs on sale; window from "
        f"{panel.start + dt.timedelta(days=last)}; DeepAR trained in {training_s:.0f} s, spread factor {spread:.2f}"
    )
    console.print(inventory_table(outcomes, lead_time, review))
    console.print(key_line(outcomes), soft_wrap=True)
