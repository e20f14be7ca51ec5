"""Rolling-origin backtest: every candidate forecaster scored on the same windows, at every level of the hierarchy.

DeepAR is trained once, on the history before the first window, and then forecasts every window from the history
before that window, as it would in production between two trainings; nothing it learned reaches into a window.
The statistical models refit on each window's history. The store x SKU level is scored on a fixed random sample of
the series (AutoETS and NPTS cost a fraction of a second per series); the aggregate levels on every series.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shelfwise.demand import models
from shelfwise.demand.aggregation import schaake_shuffle, schaake_template, sum_by_group
from shelfwise.demand.metrics import SEASON, Scores, score
from shelfwise.demand.pipeline import CANDIDATE_NAMES
from shelfwise.demand.series import DemandPanel

#: Aggregation levels, bottom first; each is the static columns a level groups by (none: the total).
LEVELS: dict[str, tuple[str, ...]] = {
    "store x sku": ("store_id", "sku"),
    "store": ("store_id",),
    "region": ("region",),
    "category": ("category",),
    "department": ("department",),
    "total": (),
}
BOTTOM = "store x sku"
CANDIDATES: tuple[str, ...] = tuple(CANDIDATE_NAMES)
BASELINE = "seasonal_naive"
#: DeepAR's paths summed as drawn, independently per series: scored at the aggregate levels to show what the
#: Schaake shuffle (`shelfwise.demand.aggregation`) fixes.
INDEPENDENT_SUM = "deepar (independent sum)"


@dataclass(frozen=True)
class BacktestSettings:
    horizon: int = models.HORIZON
    windows: int = 2
    n_paths: int = 100
    #: store x SKU series scored by every candidate; the aggregates use every series.
    sample_series: int = 300
    seed: int = 0
    deepar: models.DeepARSettings = field(default_factory=models.DeepARSettings)


@dataclass(frozen=True)
class WindowScores:
    cutoff: dt.date
    #: scores[against][level][model]; `against` is "sales" (censored days left out) or "true demand".
    scores: dict[str, dict[str, dict[str, Scores]]]


@dataclass(frozen=True)
class SampledWindow:
    """The sampled series in one window: every candidate's paths, what happened, and the sales before it."""

    cutoff: dt.date
    keys: pd.DataFrame
    paths: dict[str, np.ndarray]
    sales: np.ndarray
    true_demand: np.ndarray | None
    histories: list[np.ndarray]


@dataclass(frozen=True)
class BacktestResult:
    windows: list[WindowScores]
    seconds: dict[str, float]
    series: int
    sampled: list[SampledWindow]

    @property
    def last_window(self) -> SampledWindow:
        return self.sampled[-1]

    def mean(self, against: str, level: str, model: str, metric: str) -> float:
        """A metric averaged over the windows."""
        return float(np.mean([getattr(w.scores[against][level][model], metric) for w in self.windows]))


def window_cutoffs(end: dt.date, horizon: int, windows: int) -> list[dt.date]:
    """The first days of `windows` consecutive windows of `horizon` days that end on `end` (exclusive)."""
    return [end - dt.timedelta(days=horizon * k) for k in range(windows, 0, -1)]


def _groups(keys: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    if not columns:
        return np.zeros(len(keys), dtype=np.int64)
    return keys.groupby(list(columns), sort=True).ngroup().to_numpy()


def _aggregate_panel(panel: DemandPanel, group: np.ndarray) -> DemandPanel:
    """Summed histories of each group, as a panel the statistical models can fit."""
    units = sum_by_group(group, panel.units).astype(np.float32)
    starts = np.full(units.shape[0], panel.n_days, dtype=np.int64)
    np.minimum.at(starts, group, panel.start_index)
    keys = pd.DataFrame({"group": np.arange(units.shape[0])})
    return DemandPanel(keys, panel.start, units, np.zeros(units.shape, dtype=bool), starts, starts)


def run_backtest(
    panel: DemandPanel,
    settings: BacktestSettings,
    work_dir: Path,
    truth: np.ndarray | None = None,
    progress: Callable[[str], None] = lambda _: None,
    trained: tuple[object, models.StaticCodes] | None = None,
) -> BacktestResult:
    """Score the candidates on the last `settings.windows` windows of the panel.

    `truth` (series, days), aligned with `panel.target`, is the uncensored demand where it is known (the synthetic
    world): the candidates are then scored against it as well. `trained` is a DeepAR predictor (and its static
    codes) already trained on the history before the first window (the pipeline's training step); without it,
    DeepAR is trained here.
    """
    horizon = settings.horizon
    cutoffs = window_cutoffs(panel.end, horizon, settings.windows)
    index = [(c - panel.start).days for c in cutoffs]
    seconds: dict[str, float] = {}
    # A series takes part once it has four weeks of history before the first window.
    active = panel.start_index <= index[0] - 4 * SEASON
    panel = panel.select(active)
    truth = truth[active] if truth is not None else None
    rng = np.random.default_rng(settings.seed)
    sample = np.sort(rng.choice(len(panel.keys), size=min(settings.sample_series, len(panel.keys)), replace=False))

    if trained is None:
        progress(f"training DeepAR on {len(panel.keys):,} series before {cutoffs[0]}")
        started = time.perf_counter()
        predictor, codes = models.train_deepar(panel.head(index[0]), settings.deepar, work_dir)
        seconds["deepar training"] = time.perf_counter() - started
    else:
        predictor, codes = trained

    windows, sampled = [], []
    for cutoff, at in zip(cutoffs, index, strict=True):
        history = panel.head(at)
        paths, timing = _window_paths(history, sample, predictor, codes, settings, progress, cutoff)
        # A series whose selling life ended before the window is not forecast (its SKU is known to be off sale);
        # only the paths of series still on sale on the window's eve count in the sums.
        on_sale = np.isfinite(history.units[:, -1])
        paths = {name: p * on_sale[:, None, None] if p.shape[0] == len(on_sale) else p for name, p in paths.items()}
        for name, spent in timing.items():
            seconds[name] = seconds.get(name, 0.0) + spent
        # (bottom level, aggregates): a censored day is left out of a series' score but its sales count in totals.
        window = slice(at, at + horizon)
        actuals = {"sales": (panel.target[:, window], panel.units[:, window])}
        if truth is not None:
            actuals["true demand"] = (truth[:, window], truth[:, window])
        scores = {
            against: _level_scores(history, sample, paths, bottom, totals, settings)
            for against, (bottom, totals) in actuals.items()
        }
        windows.append(WindowScores(cutoff, scores))
        units = history.select(sample)
        sampled.append(
            SampledWindow(
                cutoff=cutoff,
                keys=units.keys,
                paths={name: p if p.shape[0] == len(sample) else p[sample] for name, p in paths.items()},
                sales=panel.units[sample, window],
                true_demand=None if truth is None else truth[sample, window],
                histories=[u[s:] for u, s in zip(np.nan_to_num(units.units), units.start_index, strict=True)],
            )
        )
    return BacktestResult(windows, seconds, len(panel.keys), sampled)


def _window_paths(
    history: DemandPanel,
    sample: np.ndarray,
    predictor: object,
    codes: models.StaticCodes,
    settings: BacktestSettings,
    progress: Callable[[str], None],
    cutoff: dt.date,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Bottom-level paths: DeepAR and seasonal naive for every series, the slow baselines for the sample."""
    n, seed = settings.n_paths, settings.seed
    timing: dict[str, float] = {}

    def timed(name: str, run: Callable[[], np.ndarray]) -> np.ndarray:
        progress(f"{cutoff}: {name}")
        started = time.perf_counter()
        out = run()
        timing[f"{name} predict"] = time.perf_counter() - started
        return out

    sampled = history.select(sample)
    return {
        "deepar": timed("deepar", lambda: models.deepar_paths(predictor, codes, history, n, seed)),
        "seasonal_naive": timed("seasonal_naive", lambda: models.seasonal_naive_paths(history, n_paths=n)),
        "autoets": timed("autoets", lambda: models.autoets_paths(sampled, n_paths=n, seed=seed)),
        "npts": timed("npts", lambda: models.npts_paths(sampled, n_paths=n, seed=seed)),
    }, timing


def _level_scores(
    history: DemandPanel,
    sample: np.ndarray,
    paths: dict[str, np.ndarray],
    actual: np.ndarray,
    totals: np.ndarray,
    settings: BacktestSettings,
) -> dict[str, dict[str, Scores]]:
    """Scores per level and candidate. Aggregates: DeepAR and seasonal naive summed bottom-up over every series
    after the Schaake shuffle, AutoETS and NPTS fitted on the aggregated history itself."""
    out: dict[str, dict[str, Scores]] = {}
    n_paths, horizon = paths["deepar"].shape[1:]
    template = schaake_template(history.units, n_paths, horizon, seed=settings.seed)
    shuffled = {name: schaake_shuffle(paths[name], template, settings.seed) for name in ("deepar", "seasonal_naive")}
    bottom = {name: p if p.shape[0] == len(sample) else p[sample] for name, p in paths.items()}
    bottom["deepar+autoets"] = models.vincentize(bottom["deepar"], bottom["autoets"])
    out[BOTTOM] = {name: score(actual[sample], p, history.target[sample]) for name, p in bottom.items()}
    for level, columns in LEVELS.items():
        if level == BOTTOM:
            continue
        group = _groups(history.keys, columns)
        aggregated = _aggregate_panel(history, group)
        level_actual = sum_by_group(group, totals)
        level_paths = {
            "deepar": sum_by_group(group, shuffled["deepar"]),
            "seasonal_naive": sum_by_group(group, shuffled["seasonal_naive"]),
            "autoets": models.autoets_paths(aggregated, n_paths=settings.n_paths, seed=settings.seed).astype(float),
            "npts": models.npts_paths(aggregated, n_paths=settings.n_paths, seed=settings.seed).astype(float),
        }
        level_paths["deepar+autoets"] = models.vincentize(level_paths["deepar"], level_paths["autoets"])
        level_paths[INDEPENDENT_SUM] = sum_by_group(group, paths["deepar"])
        out[level] = {name: score(level_actual, p, aggregated.target) for name, p in level_paths.items()}
    return out
