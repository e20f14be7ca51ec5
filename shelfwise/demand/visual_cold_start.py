"""Cold starts from visual neighbours: a new SKU sells about what the established SKUs that look like it sell.

The attribute model (`shelfwise.demand.cold_start`) gives every new SKU the level of its store x category x price
tier, then moves it by what the SKU sells. Here the SKU's multiplier on that level starts from its look-alikes
instead of 1:

- the established SKUs (launched `mature_age` days or more before the as-of date, with sales in the evidence days
  before it) each have a multiplier: what they sold at all their locations against what the attribute model
  expected of them (their store x category level x their price tier x weekdays), a gamma-Poisson posterior mean;
- a new SKU's neighbours are its `k` most similar established SKUs by cosine of their image embeddings, those of its
  own category first; their multipliers, weighted by a softmax of the similarities, give its neighbour mean `m`;
- the prior mean is 1 + Z (m - 1): Z, the credibility of neighbours, is fitted on the established SKUs themselves
  (each against its own neighbours among the others) as the regression slope of their multiplier on `m`, in [0, 1],
  so look-alikes that do not sell alike move nothing; the prior's spread is what the neighbours leave unexplained.

Forecasts are the attribute model's, with that prior (`SkuPrior`): the store, the price tier, weekdays, the launch
curve and what the SKU already sold are applied as there, so the two are interchangeable: same inputs, same
(series, horizon) means and (series, paths, horizon) paths. Only demand before the as-of date is read. Embeddings are
arrays (one unit vector per SKU), not a model: numpy and pandas only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shelfwise.demand.cold_start import AttributeEstimator, AttributePredictor, ColdStartSettings, SkuPrior
from shelfwise.demand.models import HORIZON
from shelfwise.demand.series import DemandPanel

#: A prior mean is never below this (a gamma needs a positive mean; look-alikes that sold nothing still leave hope).
_MIN_MEAN = 0.05
#: The floor of the multiplier's variance, as the attribute model's (a standard deviation of 20%).
_MIN_VARIANCE = 0.04


class EmbeddingsError(ValueError):
    """Embeddings that cannot be used: names the problem (shape, values, SKUs)."""


@dataclass(frozen=True)
class Embeddings:
    """One image embedding per SKU: `vectors` (n, dim) float32 rows, L2-normalised on construction."""

    skus: tuple[str, ...]
    vectors: np.ndarray

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.skus) or self.vectors.shape[1] < 1:
            raise EmbeddingsError(f"vectors must be (n SKUs = {len(self.skus)}, dim), got {self.vectors.shape}")
        if len(set(self.skus)) != len(self.skus):
            raise EmbeddingsError("skus must be unique")
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True) if self.vectors.size else np.ones((0, 1))
        if not np.isfinite(self.vectors).all() or (norms == 0).any():
            raise EmbeddingsError("vectors must be finite and non-zero")
        object.__setattr__(self, "vectors", (self.vectors / norms).astype(np.float32))

    def rows(self, skus: Sequence[str]) -> np.ndarray:
        """Each SKU's row, -1 for a SKU without an embedding."""
        index = pd.Index(self.skus)
        return np.asarray(index.get_indexer(pd.Index(skus)), dtype=np.int64)


@dataclass(frozen=True)
class NeighbourSettings:
    #: Neighbours per new SKU.
    k: int = 10
    #: Softmax temperature of the neighbours' weights over their cosine similarities (lower: the closest weigh more).
    temperature: float = 0.05
    #: Fit Z, the credibility of neighbours; False trusts them fully (Z = 1), for comparison.
    credibility: bool = True
    attribute: ColdStartSettings = field(default_factory=ColdStartSettings)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


@dataclass(frozen=True)
class Established:
    """The SKUs neighbours are drawn from, with their embedding, category and demand multiplier."""

    skus: np.ndarray
    category: np.ndarray
    vectors: np.ndarray
    multiplier: np.ndarray
    """Posterior mean of the SKU's multiplier on the attribute model (units sold against expected)."""


@dataclass(frozen=True)
class VisualNeighbourPredictor:
    """The attribute model with a SKU prior from visual neighbours (see the module's docstring)."""

    attributes: AttributePredictor
    settings: NeighbourSettings
    embeddings: Embeddings
    established: Established
    credibility: float
    """Z: how far the neighbours' mean moves a prior from 1."""
    slope: float
    """The regression slope Z is clipped from (NaN if too few established SKUs to fit)."""
    shape: float
    """Gamma shape of the SKU multiplier's prior about the neighbours' mean."""

    def neighbours(self, sku: str, category: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows into `established`, weights summing to 1) of the SKU's neighbours; empty without an embedding."""
        row = self.embeddings.rows([sku])[0]
        if row < 0 or len(self.established.skus) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        similarity = self.established.vectors @ self.embeddings.vectors[row]
        return _choose(similarity, self.established.category == category, self.established.skus != sku, self.settings)

    def neighbour_mean(self, sku: str, category: str) -> float:
        """The similarity-weighted mean multiplier of the SKU's neighbours (NaN without any)."""
        rows, weights = self.neighbours(sku, category)
        return float(weights @ self.established.multiplier[rows]) if rows.size else float("nan")

    def prior(self, panel: DemandPanel) -> SkuPrior:
        """Per series of `panel`: the SKU multiplier's prior (the attribute model's for a SKU without neighbours)."""
        skus = panel.keys["sku"].astype(str).to_numpy()
        categories = panel.keys["category"].astype(str).to_numpy()
        means = {s: self.neighbour_mean(s, c) for s, c in dict(zip(skus, categories, strict=True)).items()}
        m = np.array([means[s] for s in skus])
        known = np.isfinite(m)
        mean = np.where(known, np.maximum(1.0 + self.credibility * (np.where(known, m, 1.0) - 1.0), _MIN_MEAN), 1.0)
        shape = np.where(known, self.shape, self.attributes.sku_shape)
        return SkuPrior(mean=mean, shape=shape)

    def mean(self, panel: DemandPanel, horizon: int = HORIZON) -> np.ndarray:
        """(series, horizon) mean daily units of the days after the panel's end (which should be the as-of date)."""
        return self.attributes.mean(panel, horizon, self.prior(panel))

    def predict(self, panel: DemandPanel, horizon: int = HORIZON, n_paths: int = 200, seed: int = 0) -> np.ndarray:
        """(series, paths, horizon) float32 sample paths of daily units after the panel's end: whole numbers >= 0."""
        return self.attributes.predict(panel, horizon, n_paths, seed, self.prior(panel))


@dataclass(frozen=True)
class VisualNeighbourEstimator:
    settings: NeighbourSettings = field(default_factory=NeighbourSettings)

    def train(
        self, panel: DemandPanel, embeddings: Embeddings, as_of: dt.date | None = None
    ) -> VisualNeighbourPredictor:
        """Fit on the days of `panel` before `as_of` (default: all of them): nothing on or after it is read."""
        history = _before(panel, as_of)
        attributes = AttributeEstimator(self.settings.attribute).train(history)
        established, ratio, expected = _established(history, attributes, embeddings)
        predictor = VisualNeighbourPredictor(
            attributes, self.settings, embeddings, established, 1.0, np.nan, attributes.sku_shape
        )
        own = np.array(
            [predictor.neighbour_mean(s, c) for s, c in zip(established.skus, established.category, strict=True)]
        )
        credibility, slope, shape = _fit_prior(own, established.multiplier, ratio, expected, self.settings, attributes)
        return VisualNeighbourPredictor(attributes, self.settings, embeddings, established, credibility, slope, shape)


def visual_cold_start_paths(
    history: DemandPanel,
    series: DemandPanel,
    embeddings: Embeddings,
    n_paths: int = 200,
    seed: int = 0,
    horizon: int = HORIZON,
    settings: NeighbourSettings | None = None,
) -> np.ndarray:
    """Paths of the `horizon` days after `series`' end from the model fitted on `history` (as `cold_start_paths`)."""
    predictor = VisualNeighbourEstimator(settings or NeighbourSettings()).train(history, embeddings)
    return predictor.predict(series, horizon, n_paths, seed)


def _before(panel: DemandPanel, as_of: dt.date | None) -> DemandPanel:
    if as_of is None:
        return panel
    days = (as_of - panel.start).days
    if not 0 < days <= panel.n_days:
        raise ValueError(f"as_of {as_of} must fall after the panel's start {panel.start} and by its end {panel.end}")
    return panel.head(days)


def _established(
    history: DemandPanel, attributes: AttributePredictor, embeddings: Embeddings
) -> tuple[Established, np.ndarray, np.ndarray]:
    """The established SKUs with an embedding and evidence, and per SKU its raw units / expected and expected."""
    keys = history.keys.assign(launch=history.launch_index)
    per_sku = keys.groupby(keys["sku"].astype(str)).agg(category=("category", "first"), launch=("launch", "min"))
    mature = per_sku[per_sku["launch"] <= history.n_days - attributes.settings.mature_age]
    evidence = attributes.sku_evidence.reindex(mature.index)
    usable = mature[(evidence["expected"] > 0).to_numpy() & (embeddings.rows(list(mature.index)) >= 0)]
    evidence = evidence.loc[usable.index]
    units, expected = evidence["units"].to_numpy(dtype=float), evidence["expected"].to_numpy(dtype=float)
    shape = attributes.sku_shape
    established = Established(
        skus=usable.index.to_numpy(dtype=str),
        category=usable["category"].astype(str).to_numpy(),
        vectors=embeddings.vectors[embeddings.rows(list(usable.index))],
        multiplier=(shape + units) / (shape + expected),
    )
    return established, units / expected, expected


def _choose(
    similarity: np.ndarray, same_category: np.ndarray, allowed: np.ndarray, settings: NeighbourSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most similar allowed rows, those of the same category first, and their softmax weights."""
    order = np.lexsort((-similarity, ~same_category))
    rows = order[allowed[order]][: settings.k]
    logits = similarity[rows] / settings.temperature
    weights = np.exp(logits - logits.max()) if rows.size else np.zeros(0)
    return rows, weights / weights.sum() if rows.size else weights


def _fit_prior(
    own: np.ndarray,
    multiplier: np.ndarray,
    ratio: np.ndarray,
    expected: np.ndarray,
    settings: NeighbourSettings,
    attributes: AttributePredictor,
) -> tuple[float, float, float]:
    """(Z, the slope it is clipped from, gamma shape) of the prior: the slope of the established SKUs' multipliers
    on their neighbours' mean, and the attribute model's shape scaled by the share of the multipliers' variance
    the neighbours leave."""
    keep = np.isfinite(own)
    if keep.sum() < 3 or float(np.var(own[keep])) == 0.0:
        return (0.0 if settings.credibility else 1.0), float("nan"), attributes.sku_shape
    own, multiplier, ratio, expected = own[keep], multiplier[keep], ratio[keep], expected[keep]
    slope = float(np.cov(multiplier, own)[0, 1] / np.var(own, ddof=1))
    z = float(np.clip(slope, 0.0, 1.0)) if settings.credibility else 1.0
    noise = float(np.mean(1.0 / expected))
    before = max(float(np.mean((ratio - 1.0) ** 2)) - noise, _MIN_VARIANCE)
    after = max(float(np.mean((ratio - 1.0 - z * (own - 1.0)) ** 2)) - noise, _MIN_VARIANCE)
    return z, slope, attributes.sku_shape * before / after
