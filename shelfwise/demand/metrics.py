"""Forecast accuracy from sample paths: MASE, RMSSE, weighted quantile loss, interval coverage and bias.

Definitions follow the M5 competition and GluonTS's `Evaluator`: errors are scaled by the in-sample error of the
weekly seasonal naive forecast (MASE, RMSSE), wQL is 2 x the summed pinball loss over the summed absolute actuals,
averaged over the quantiles 0.1..0.9. Censored days (a stockout hid the demand) are left out through `observed`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SEASON = 7


@dataclass(frozen=True)
class Scores:
    """Accuracy of a set of forecasts at one level of the hierarchy (lower is better except `coverage_80`)."""

    series: int
    mase: float
    rmsse: float
    wql: float
    coverage_80: float
    bias: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _seasonal_scales(history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per series: the mean absolute and the mean squared weekly seasonal difference of the history (NaN-aware)."""
    diff = history[:, SEASON:] - history[:, :-SEASON]
    with np.errstate(all="ignore"):
        return np.nanmean(np.abs(diff), axis=1), np.nanmean(diff**2, axis=1)


def score(
    actual: np.ndarray,
    samples: np.ndarray,
    history: np.ndarray,
    observed: np.ndarray | None = None,
) -> Scores:
    """Scores of `samples` (series, paths, horizon) against `actual` (series, horizon).

    `history` (series, days) gives each series' scale; series whose history has no seasonal variation (a scale of
    0 or NaN) are left out of MASE and RMSSE, as the M5 did, but count in wQL, coverage and bias.
    """
    if samples.ndim != 3 or samples.shape[0] != actual.shape[0] or samples.shape[2] != actual.shape[1]:
        raise ValueError(f"samples {samples.shape} do not match actual {actual.shape}")
    mask = np.isfinite(actual) if observed is None else observed & np.isfinite(actual)
    y = np.where(mask, actual, 0.0)
    levels = np.quantile(samples, QUANTILES, axis=1)  # (quantile, series, horizon)
    mean = samples.mean(axis=1)
    median = levels[QUANTILES.index(0.5)]

    mae_scale, mse_scale = _seasonal_scales(history)
    n_obs = mask.sum(axis=1)
    scaled = (mae_scale > 0) & (n_obs > 0)
    with np.errstate(all="ignore"):
        mase = (np.abs(y - median) * mask).sum(axis=1)[scaled] / n_obs[scaled] / mae_scale[scaled]
        rmsse = np.sqrt(((y - mean) ** 2 * mask).sum(axis=1)[scaled] / n_obs[scaled] / mse_scale[scaled])

    total = float(np.abs(y).sum())
    low, high = levels[QUANTILES.index(0.1)], levels[QUANTILES.index(0.9)]
    covered = ((y >= low) & (y <= high) & mask).sum()
    observed_days = int(mask.sum())
    return Scores(
        series=int(actual.shape[0]),
        mase=float(np.mean(mase)) if mase.size else float("nan"),
        rmsse=float(np.mean(rmsse)) if rmsse.size else float("nan"),
        wql=weighted_quantile_loss(y, levels, mask),
        coverage_80=float(covered / observed_days) if observed_days else float("nan"),
        bias=float(((mean - y) * mask).sum() / total) if total > 0 else float("nan"),
    )


def weighted_quantile_loss(actual: np.ndarray, levels: np.ndarray, mask: np.ndarray) -> float:
    """wQL of the quantile forecasts `levels` (quantile, series, horizon) at `QUANTILES` where `mask` holds."""
    y = np.where(mask, actual, 0.0)
    total = float(np.abs(y).sum())
    if total <= 0:
        return float("nan")
    losses = [
        2 * float((np.maximum(q * (y - level), (q - 1) * (y - level)) * mask).sum()) / total
        for q, level in zip(QUANTILES, levels, strict=True)
    ]
    return float(np.mean(losses))
