"""Forecasts of sums (store, region, category, total) from the store x SKU sample paths.

Each series' paths are drawn independently of the other series', so summing them as they come assumes that a busy
day for one SKU says nothing about another: their errors cancel and the sum's intervals come out far too narrow
(80% intervals covering a fifth of the days at the total). Demand shocks are shared (weather, traffic, a payday), so
before summing, the paths are reordered with the Schaake shuffle (Clark et al. 2004): for every series and day, the
k-th path takes the sample whose rank matches the rank of that series' seasonal difference in the k-th of a set of
historical windows shared by all series. Each series' daily distributions stay exactly as forecast; the dependence
between series (and between days) becomes the one history showed.
"""

from __future__ import annotations

import numpy as np

from shelfwise.demand.metrics import SEASON


def schaake_template(
    history: np.ndarray, n_paths: int, horizon: int, seed: int = 0, span_days: int = 364
) -> np.ndarray:
    """(series, paths, horizon) seasonal differences of `n_paths` historical windows drawn from the last
    `span_days`; the same windows for every series, which is what carries the dependence between them."""
    diffs = history[:, SEASON:] - history[:, :-SEASON]
    last_start = diffs.shape[1] - horizon
    if last_start < 0:
        raise ValueError(f"history of {history.shape[1]} days is too short for windows of {horizon} days")
    first_start = max(0, last_start - span_days)
    rng = np.random.default_rng(seed)
    starts = rng.integers(first_start, last_start + 1, size=n_paths)
    windows = starts[:, None] + np.arange(horizon)[None, :]  # (paths, horizon)
    template = diffs[:, windows]  # (series, paths, horizon)
    # Missing history (before a launch, censored days) gets a random rank rather than a shared one.
    noise = rng.random(template.shape)
    return np.where(np.isfinite(template), template, noise * 1e-6)


def schaake_shuffle(paths: np.ndarray, template: np.ndarray, seed: int = 0) -> np.ndarray:
    """`paths` reordered along the path axis so that their ranks follow `template`'s, per series and day."""
    if paths.shape != template.shape:
        raise ValueError(f"paths {paths.shape} and template {template.shape} differ")
    rng = np.random.default_rng(seed)
    # Ties (many zero differences in sparse series) are broken at random, not by position.
    jitter = rng.random(template.shape) * 1e-9
    ranks = np.argsort(np.argsort(template + jitter, axis=1), axis=1)
    ordered = np.sort(paths, axis=1)
    return np.take_along_axis(ordered, ranks, axis=1)


def sum_by_group(group: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of `values` (first axis) summed by group id; NaN counts as 0."""
    out = np.zeros((int(group.max()) + 1, *values.shape[1:]), dtype=np.float64)
    np.add.at(out, group, np.nan_to_num(values))
    return out
