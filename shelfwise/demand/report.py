"""What a demand planner looks at first: forecasts drawn as fan charts with what happened over them.

`pick_examples` (run by the evaluation step) keeps, from the backtest, a steady series of the last window and the
series whose sales rose most (in units) in the window holding Black Friday (else the last), with the selected
forecaster's quantiles and the sales; `plot_fan_charts` (the local run) draws them with the synthetic world's true
demand, and a cold start's forecast of the coming weeks, which has no truth yet. When the newest forecast holds no
cold start, `launch_example` forecasts the history's latest launch as it was a week after it went on sale.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np

from shelfwise.demand.backtest import BacktestResult, SampledWindow
from shelfwise.demand.models import HORIZON, vincentize
from shelfwise.demand.series import DemandPanel
from shelfwise.retail_calendar import black_friday

FAN_QUANTILES: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
HISTORY_DAYS = 56


def _paths(window: SampledWindow, forecaster: str) -> np.ndarray:
    if forecaster == "deepar+autoets":
        return vincentize(window.paths["deepar"], window.paths["autoets"])
    return window.paths[forecaster]


def _example(window: SampledWindow, row: int, forecaster: str, title: str) -> dict[str, Any]:
    levels = np.quantile(_paths(window, forecaster)[row], FAN_QUANTILES, axis=0)
    history = window.histories[row][-HISTORY_DAYS:]
    return {
        "title": title,
        "store_id": str(window.keys["store_id"].iloc[row]),
        "sku": str(window.keys["sku"].iloc[row]),
        "cutoff": window.cutoff.isoformat(),
        "history": [round(float(v), 2) for v in history],
        "quantiles": {
            f"{q:.2f}": [round(float(v), 2) for v in level] for q, level in zip(FAN_QUANTILES, levels, strict=True)
        },
        "sales": [None if not np.isfinite(v) else round(float(v), 2) for v in window.sales[row]],
    }


def pick_examples(result: BacktestResult, forecaster: str) -> list[dict[str, Any]]:
    """A steady series of the last window and the one that rose most in the Black Friday window."""
    last = result.last_window
    volume = np.array([h[-HISTORY_DAYS:].mean() if h.size else 0.0 for h in last.histories])
    spread = np.array([h[-HISTORY_DAYS:].std() if h.size else np.inf for h in last.histories])
    busy = volume >= max(1.0, float(np.quantile(volume, 0.5)))
    steadiness = np.where(busy, volume / np.maximum(spread, 1e-9), -np.inf)
    examples = [_example(last, int(np.argmax(steadiness)), forecaster, "steady")]

    def has_black_friday(window: SampledWindow) -> bool:
        day = black_friday(window.cutoff.year)
        return window.cutoff <= day < window.cutoff + dt.timedelta(days=len(window.sales[0]))

    peak = next((w for w in result.sampled if has_black_friday(w)), last)
    before = np.array([h[-28:].sum() for h in peak.histories])
    during = np.nansum(peak.sales, axis=1)
    # The largest rise in units, among series selling at least one a day: visible, not a blip of a sparse series.
    lift = np.where(before >= 28, during - before, -np.inf)
    title = "Black Friday" if has_black_friday(peak) else "largest rise"
    examples.append(_example(peak, int(np.argmax(lift)), forecaster, title))
    return examples


def launch_example(
    panel: DemandPanel, days_on_sale: int = 7, n_paths: int = 200, seed: int = 0
) -> dict[str, Any] | None:
    """The latest launch whose next four weeks the panel holds, forecast `days_on_sale` after its first day by the
    cold-start model fitted on what was known then, with its sales (None if the panel holds no such launch)."""
    from shelfwise.demand.cold_start import cold_start_paths

    cutoff = panel.start_index + days_on_sale
    fits = (panel.start_index > 0) & (cutoff + HORIZON <= panel.n_days)
    if not fits.any():
        return None
    row = int(np.flatnonzero(fits)[np.argmax(panel.start_index[fits])])
    at = int(cutoff[row])
    history = panel.head(at)
    paths = cold_start_paths(history, history.select(np.array([row])), n_paths, seed)[0]
    levels = np.quantile(paths, FAN_QUANTILES, axis=0)
    sales = panel.units[row, at : at + HORIZON]
    return {
        "title": f"new launch, {days_on_sale} days on sale",
        "store_id": str(panel.keys["store_id"].iloc[row]),
        "sku": str(panel.keys["sku"].iloc[row]),
        "cutoff": (panel.start + dt.timedelta(days=at)).isoformat(),
        "history": [round(float(v), 2) for v in np.nan_to_num(panel.units[row, panel.start_index[row] : at])],
        "quantiles": {
            f"{q:.2f}": [round(float(v), 2) for v in level] for q, level in zip(FAN_QUANTILES, levels, strict=True)
        },
        "sales": [None if not np.isfinite(v) else round(float(v), 2) for v in sales],
    }


def plot_fan_charts(
    examples: list[dict[str, Any]],
    truths: list[list[float | None] | None],
    cold_start: dict[str, Any] | None,
    path: Path,
) -> Path:
    """One panel per example (history, 50% and 90% bands, median, sales, true demand) and the cold start's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = len(examples) + (cold_start is not None)
    figure, axes = plt.subplots(panels, 1, figsize=(10, 3.2 * panels), squeeze=False)
    for ax, example, truth in zip(axes[:, 0], examples, truths, strict=False):
        cutoff = dt.date.fromisoformat(example["cutoff"])
        _fan(ax, example, cutoff)
        days = [cutoff + dt.timedelta(days=i) for i in range(len(example["sales"]))]
        ax.plot(days, [np.nan if v is None else v for v in example["sales"]], "k.", label="sales")
        if truth is not None:
            ax.plot(days, [np.nan if v is None else v for v in truth], "r-", lw=1, label="true demand")
        ax.set_title(f"{example['title']}: store {example['store_id']}, SKU {example['sku']} (backtest)")
        ax.legend(loc="upper left", fontsize=8)
    if cold_start is not None:
        ax = axes[-1, 0]
        _fan(ax, cold_start, dt.date.fromisoformat(cold_start["cutoff"]))
        ax.set_title(
            f"new launch (cold start): store {cold_start['store_id']}, SKU {cold_start['sku']}, "
            "the coming 28 days (no truth yet)"
        )
        ax.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _fan(ax: Any, example: dict[str, Any], cutoff: dt.date) -> None:
    history = example["history"]
    past = [cutoff - dt.timedelta(days=len(history) - i) for i in range(len(history))]
    ax.plot(past, history, color="0.4", lw=1, label="history")
    q = example["quantiles"]
    days = [cutoff + dt.timedelta(days=i) for i in range(len(q["0.50"]))]
    ax.fill_between(days, q["0.05"], q["0.95"], color="tab:blue", alpha=0.2, label="90% interval")
    ax.fill_between(days, q["0.25"], q["0.75"], color="tab:blue", alpha=0.4, label="50% interval")
    ax.plot(days, q["0.50"], color="tab:blue", lw=1.5, label="median")
    ax.axvline(cutoff, color="0.6", ls="--", lw=0.8)
