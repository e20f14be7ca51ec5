"""Forecasts for cold starts (a SKU launched a few weeks ago, or launching) from what is known about them.

A multiplicative model fitted on the established series of a history panel (launched `mature_age` days or more
before), in GluonTS's estimator/predictor split (`AttributeEstimator.train` -> `AttributePredictor.predict`):

    mean(series, day) = level(store, category) x tier(category, price tier) x launch(age) x weekday(format, category)
                        x SKU multiplier x series multiplier

- level: the mean daily units of the store's established series of the category over the last `level_days`,
  shrunk toward store factor x category rate x format-by-department factor when the cell has few series (and that
  prior alone for a store or category without established series: the department's rate, then the overall one);
- tier: the category's price tier's SKUs against the category, shrunk (Buhlmann credibility, fitted) toward the
  tier across categories and that toward 1;
- launch: what the series launched during the history sold at each age (weekly buckets) against the established
  series of their store x category on the same days;
- weekday: the category's day-of-week profile in the store's format, shrunk toward the category's, then the overall;
- multipliers: whatever the SKU (at every location) and the series already sold against what the model expected,
  as gamma-Poisson credibility (a gamma prior whose spread is the established SKUs' and series' spread about the
  model), so a few days of sales move the forecast little and a few weeks most of the way.

Paths are gamma-Poisson: per path a SKU and a series multiplier drawn from their posteriors (which keeps a path's
days together, as cumulative demand needs), per day a gamma shock of the dispersion fitted on the established
series' residuals, then Poisson counts. numpy and pandas only; deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from shelfwise.demand.models import HORIZON
from shelfwise.demand.series import DemandPanel

#: The static attributes the model reads (the region is not one: a store's own level holds it).
ATTRIBUTES: tuple[str, ...] = ("store_id", "sku", "format", "department", "category", "price_tier")
#: A group key's parts are joined with this (never in an attribute).
_SEP = "\x1f"
_WEEK = 7


@dataclass(frozen=True)
class ColdStartSettings:
    #: A series is established from this age (days since its SKU's launch): the launch curve is over by then.
    mature_age: int = 91
    #: Recent days the levels are measured on (whole weeks: no weekday bias).
    level_days: int = 56
    #: Days the weekday profiles are measured on.
    profile_days: int = 364
    #: Starts of the launch curve's age buckets (days); ages from `mature_age` on are established (factor 1).
    age_buckets: tuple[int, ...] = (0, 7, 14, 21, 28, 42, 56)
    #: Days of a series' own history its multipliers read.
    evidence_days: int = 91
    #: Series (or SKUs) a group's own mean is worth against its coarser group's, where no variance is fitted.
    strength: float = 3.0


@dataclass(frozen=True)
class SkuPrior:
    """Per series: a gamma prior of its SKU multiplier from something the attributes do not hold (what look-alike
    SKUs sold, `shelfwise.demand.visual_cold_start`), in place of the established SKUs' spread about 1."""

    mean: np.ndarray
    shape: np.ndarray

    def __post_init__(self) -> None:
        if self.mean.shape != self.shape.shape or self.mean.ndim != 1:
            raise ValueError(f"prior mean {self.mean.shape} and shape {self.shape.shape} must be equal 1-D arrays")
        if not ((self.mean > 0).all() and (self.shape > 0).all()):
            raise ValueError("prior means and shapes must be positive")


@dataclass(frozen=True)
class AttributePredictor:
    """The fitted model: tables keyed by joined attributes, with fallbacks to coarser groups where a key lacks."""

    settings: ColdStartSettings
    overall_rate: float
    levels: dict[str, pd.Series]
    """`department`, `category`: units a day of an established series; `store`, `format`: factors against the
    category rates; `format_department`: factor against both; `cell`: the store x category level."""
    tiers: dict[str, pd.Series]
    """`tier`, `category_tier`: factors against the store x category level."""
    weekdays: dict[str, pd.DataFrame]
    """`overall`, `category`, `format_category`: 7 columns (Monday first) of mean 1."""
    launch: np.ndarray
    """(buckets,) the launch curve: a factor per age bucket of `settings.age_buckets`."""
    sku_shape: float = 1.0
    """Gamma shape of the SKU multiplier's prior (1 / its variance across established SKUs)."""
    series_shape: float = 1.0
    """Gamma shape of the series multiplier's prior (about its SKU's)."""
    dispersion: float = 0.0
    """Daily negative binomial dispersion (variance = mean + dispersion x mean^2) about a series' level."""
    sku_evidence: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["units", "expected"]))
    """Per SKU of the history: units sold and expected by the model (before multipliers) on its recent days."""

    def level(self, keys: pd.DataFrame) -> np.ndarray:
        """(series,) units a day of an established series with these attributes, before weekday and age."""
        k = _attributes(keys)
        return np.asarray(self._cell_level(k) * self._tier(k))

    def _cell_level(self, k: pd.DataFrame) -> np.ndarray:
        t = self.levels
        category = _lookup(k, [(("category",), t["category"]), (("department",), t["department"])], self.overall_rate)
        store = _lookup(k, [(("store_id",), t["store"]), (("format",), t["format"])], 1.0)
        mix = _lookup(k, [(("format", "department"), t["format_department"])], 1.0)
        cell = _lookup(k, [(("store_id", "category"), t["cell"])])
        return np.where(np.isnan(cell), category * store * mix, cell)

    def _tier(self, k: pd.DataFrame) -> np.ndarray:
        chain = [(("category", "price_tier"), self.tiers["category_tier"]), (("price_tier",), self.tiers["tier"])]
        return _lookup(k, chain, 1.0)

    def weekday(self, keys: pd.DataFrame) -> np.ndarray:
        """(series, 7) weekday factors, Monday first."""
        k = _attributes(keys)
        out = np.full((len(k), _WEEK), np.nan)
        for columns, table in ((("format", "category"), "format_category"), (("category",), "category")):
            missing = np.isnan(out[:, 0])
            out[missing] = self.weekdays[table].reindex(_key(k, columns)).to_numpy(dtype=float)[missing]
        overall = self.weekdays["overall"].to_numpy(dtype=float)[0]
        return np.where(np.isnan(out), overall[None, :], out)

    def launch_factor(self, age: np.ndarray) -> np.ndarray:
        """The launch curve at each age (days since launch): 0 before it, 1 once established."""
        bucket = np.searchsorted(np.asarray(self.settings.age_buckets), age, side="right") - 1
        curve = self.launch[np.clip(bucket, 0, len(self.launch) - 1)]
        return np.where(age < 0, 0.0, np.where(age >= self.settings.mature_age, 1.0, curve))

    def expected(self, panel: DemandPanel, first: int, days: int) -> np.ndarray:
        """(series, days) the model's mean from day `first` of the panel on, before the multipliers; 0 before a
        series' selling life starts."""
        day = np.arange(first, first + days)
        age = day[None, :] - panel.launch_index[:, None]
        weekday = (panel.start.weekday() + day) % _WEEK
        mean = self.level(panel.keys)[:, None] * self.weekday(panel.keys)[:, weekday] * self.launch_factor(age)
        return np.where(day[None, :] >= panel.start_index[:, None], mean, 0.0)

    def multipliers(
        self, panel: DemandPanel, prior: SkuPrior | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Gamma posteriors (shape, rate) of each series' SKU multiplier and series multiplier, from what the SKU
        sold at every location of the history the model was fitted on (so `panel` should end where that history
        does; a SKU it lacks reads `panel`'s series) and what the series sold; about `prior` when given, else about
        the established SKUs' (mean 1)."""
        units, expected = _evidence(self, panel)
        skus = pd.Index(panel.keys["sku"].astype(str))
        given = pd.DataFrame({"units": units, "expected": expected}, index=skus).groupby(level=0).sum()
        pooled = self.sku_evidence.reindex(skus).fillna(given.reindex(skus))
        shape, mean = (self.sku_shape, 1.0) if prior is None else (prior.shape, prior.mean)
        sku_shape = shape + pooled["units"].to_numpy(dtype=float)
        sku_rate = shape / mean + pooled["expected"].to_numpy(dtype=float)
        series_shape = self.series_shape + units
        series_rate = self.series_shape + expected * sku_shape / sku_rate
        return sku_shape, sku_rate, series_shape, series_rate

    def mean(self, panel: DemandPanel, horizon: int = HORIZON, prior: SkuPrior | None = None) -> np.ndarray:
        """(series, horizon) mean daily units of the days after the panel's end."""
        sku_shape, sku_rate, series_shape, series_rate = self.multipliers(panel, prior)
        factor = sku_shape / sku_rate * series_shape / series_rate
        return np.asarray(self.expected(panel, panel.n_days, horizon) * factor[:, None])

    def predict(
        self,
        panel: DemandPanel,
        horizon: int = HORIZON,
        n_paths: int = 200,
        seed: int = 0,
        prior: SkuPrior | None = None,
    ) -> np.ndarray:
        """(series, paths, horizon) float32 sample paths of daily units after the panel's end: whole numbers >= 0."""
        rng = np.random.default_rng(seed)
        base = self.expected(panel, panel.n_days, horizon)
        sku_shape, sku_rate, series_shape, series_rate = self.multipliers(panel, prior)
        size = (len(base), n_paths)
        multiplier = rng.gamma(sku_shape[:, None], 1.0 / sku_rate[:, None], size=size) * rng.gamma(
            series_shape[:, None], 1.0 / series_rate[:, None], size=size
        )
        rate = base[:, None, :] * multiplier[:, :, None]
        if self.dispersion > 0:
            rate = rate * rng.gamma(1.0 / self.dispersion, self.dispersion, size=rate.shape)
        return rng.poisson(rate).astype(np.float32)


@dataclass(frozen=True)
class AttributeEstimator:
    settings: ColdStartSettings = field(default_factory=ColdStartSettings)

    def train(self, panel: DemandPanel) -> AttributePredictor:
        """Fit on the history `panel`; a `ValueError` if it has no established series to learn from."""
        s = self.settings
        keys = _attributes(panel.keys)
        rates = _recent_rates(panel, s)
        if rates.empty and s.mature_age > 0:
            # A history too young for established series: every series counts as one, and no launch curve.
            return AttributeEstimator(replace(s, mature_age=0)).train(panel)
        if rates.empty:
            raise ValueError(f"no series observed on {s.level_days // 2}+ of the last {s.level_days} days to fit on")
        established = keys.loc[rates.index].assign(rate=rates.to_numpy())
        overall, levels = _levels(established, s.strength)
        model = AttributePredictor(
            s, overall, levels, _no_tiers(), _weekdays(panel, keys, s), np.ones(len(s.age_buckets))
        )
        skus = _sku_ratios(established, model)
        model = replace(model, tiers=_tiers(skus))
        model = replace(model, launch=_launch_curve(panel, keys, model))
        sku_shape, series_shape = _shapes(established, skus, model)
        model = replace(model, sku_shape=sku_shape, series_shape=series_shape)
        units, expected = _evidence(model, panel)
        evidence = pd.DataFrame({"units": units, "expected": expected}, index=pd.Index(keys["sku"]))
        return replace(
            model, sku_evidence=evidence.groupby(level=0).sum(), dispersion=_dispersion(panel, keys, rates, model)
        )


def cold_start_paths(
    history: DemandPanel,
    series: DemandPanel,
    n_paths: int = 200,
    seed: int = 0,
    horizon: int = HORIZON,
    settings: ColdStartSettings | None = None,
) -> np.ndarray:
    """Paths of the `horizon` days after `series`' end from the model fitted on `history`."""
    predictor = AttributeEstimator(settings or ColdStartSettings()).train(history)
    return predictor.predict(series, horizon, n_paths, seed)


def category_average_paths(
    history: DemandPanel,
    series: DemandPanel,
    n_paths: int = 200,
    seed: int = 0,
    horizon: int = HORIZON,
    settings: ColdStartSettings | None = None,
) -> np.ndarray:
    """The baseline: Poisson paths about the mean daily units of the established series of the same store x
    category over the last `level_days` (of the category at every store where the store has none, then of all);
    0 before a series' selling life starts."""
    s = settings or ColdStartSettings()
    rates = _recent_rates(history, s)
    frame = _attributes(history.keys).loc[rates.index].assign(rate=rates.to_numpy())
    chain = [(c, frame.groupby(_key(frame, c))["rate"].mean()) for c in (("store_id", "category"), ("category",))]
    mean = _lookup(_attributes(series.keys), chain, float(frame["rate"].mean()))
    day = np.arange(series.n_days, series.n_days + horizon)
    rate = np.where(day[None, :] >= series.start_index[:, None], mean[:, None], 0.0)
    rng = np.random.default_rng(seed)
    return rng.poisson(np.repeat(rate[:, None, :], n_paths, axis=1)).astype(np.float32)


# --- fitting ---


def _attributes(keys: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ATTRIBUTES if c not in keys.columns]
    if missing:
        raise ValueError(f"series keys lack attribute(s) {', '.join(missing)}")
    return keys[list(ATTRIBUTES)].astype(str).reset_index(drop=True)


def _key(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Index:
    """The columns' values joined into one string per row: every table's index."""
    joined = frame[columns[0]].astype(str)
    for column in columns[1:]:
        joined = joined + _SEP + frame[column].astype(str)
    return pd.Index(joined.to_numpy())


def _lookup(
    keys: pd.DataFrame, chain: Sequence[tuple[Sequence[str], pd.Series]], default: float = np.nan
) -> np.ndarray:
    """Each row's value in the first table of `chain` that has its key (of the columns named), else `default`."""
    out = np.full(len(keys), np.nan)
    for columns, table in chain:
        missing = np.isnan(out)
        if not missing.any():
            break
        out[missing] = table.reindex(_key(keys, columns)).to_numpy(dtype=float)[missing]
    return np.where(np.isnan(out), default, out)


def _ages(panel: DemandPanel, first: int = 0) -> np.ndarray:
    return np.asarray(np.arange(first, panel.n_days)[None, :] - panel.launch_index[:, None])


def _recent_rates(panel: DemandPanel, s: ColdStartSettings) -> pd.Series:
    """Mean daily units over the last `level_days` of each established series (indexed by row): observed (not
    censored) at age `mature_age` or more on at least half of those days."""
    first = max(0, panel.n_days - s.level_days)
    target = panel.target[:, first:]
    mature = np.isfinite(target) & (_ages(panel, first) >= s.mature_age)
    days = mature.sum(axis=1)
    units = np.where(mature, target, 0.0).sum(axis=1)
    rows = np.flatnonzero(days >= max(1, (panel.n_days - first) // 2))
    return pd.Series(units[rows] / days[rows], index=rows, dtype=float)


def _shrunk(frame: pd.DataFrame, columns: Sequence[str], prior: np.ndarray, strength: float) -> pd.Series:
    """Per group of `columns`: the mean `rate` moved toward the group's `prior` (given per row) by
    SKUs / (SKUs + strength)."""
    groups = frame.assign(prior=prior).groupby(_key(frame, columns))
    stats = groups.agg(rate=("rate", "mean"), prior=("prior", "first"), skus=("sku", "nunique"))
    z = stats["skus"] / (stats["skus"] + strength)
    return z * stats["rate"] + (1 - z) * stats["prior"]


def _ratio(frame: pd.DataFrame, columns: Sequence[str], expected: np.ndarray) -> pd.Series:
    """Per group: its units over what `expected` (per row) made of them."""
    sums = frame.assign(expected=expected).groupby(_key(frame, columns))[["rate", "expected"]].sum()
    return (sums["rate"] / sums["expected"].where(sums["expected"] > 0)).fillna(1.0)


def _levels(frame: pd.DataFrame, strength: float) -> tuple[float, dict[str, pd.Series]]:
    """From the established series' `rate`: rates of departments and categories (each shrunk toward the coarser),
    store and format factors, format x department factors (shrunk toward 1) and the store x category level (shrunk
    toward the product of the others)."""
    overall = float(frame["rate"].mean())
    department = _shrunk(frame, ["department"], np.full(len(frame), overall), strength)
    category = _shrunk(frame, ["category"], department.reindex(_key(frame, ["department"])).to_numpy(), strength)
    by_category = category.reindex(_key(frame, ["category"])).to_numpy()
    store = _ratio(frame, ["store_id"], by_category)
    by_store = by_category * store.reindex(_key(frame, ["store_id"])).to_numpy()
    series = frame.groupby(_key(frame, ["format", "department"])).size()
    mix = (series * _ratio(frame, ["format", "department"], by_store) + strength) / (series + strength)
    prior = by_store * mix.reindex(_key(frame, ["format", "department"])).to_numpy()
    return overall, {
        "department": department,
        "category": category,
        "store": store,
        "format": _ratio(frame, ["format"], by_category),
        "format_department": mix,
        "cell": _shrunk(frame, ["store_id", "category"], prior, strength),
    }


def _no_tiers() -> dict[str, pd.Series]:
    return {"tier": pd.Series(dtype=float), "category_tier": pd.Series(dtype=float)}


def _sku_ratios(frame: pd.DataFrame, model: AttributePredictor) -> pd.DataFrame:
    """Per established SKU: its units a day at all its locations over their store x category levels (`ratio`,
    about 1 on average), the units those levels expect over `level_days` (`expected`), category and price tier."""
    level = model._cell_level(frame)
    grouped = frame.assign(level=level).groupby("sku")
    skus = grouped.agg(
        rate=("rate", "sum"), level=("level", "sum"), category=("category", "first"), price_tier=("price_tier", "first")
    )
    skus = skus[skus["level"] > 0]
    return skus.assign(ratio=skus["rate"] / skus["level"], expected=skus["level"] * model.settings.level_days)


def _credibility(ratio: pd.Series, groups: pd.Index) -> pd.Series:
    """Buhlmann credibility: each group's mean `ratio` moved toward 1 by n / (n + within / between variance), both
    estimated from the data (groups that differ by no more than their noise are worth nothing)."""
    stats = (
        pd.DataFrame({"x": ratio.to_numpy(), "g": np.asarray(groups)}).groupby("g")["x"].agg(["mean", "var", "size"])
    )
    freedom = float((stats["size"] - 1).sum())
    if freedom <= 0 or len(stats) < 2:
        return stats["mean"] * 0.0 + 1.0
    within = float(np.nansum(stats["var"] * (stats["size"] - 1))) / freedom
    between = float(np.var(stats["mean"].to_numpy(), ddof=1)) - within * float(np.mean(1.0 / stats["size"]))
    if between <= 0:
        return stats["mean"] * 0.0 + 1.0
    z = stats["size"] / (stats["size"] + within / between)
    return 1.0 + z * (stats["mean"] - 1.0)


def _tiers(skus: pd.DataFrame) -> dict[str, pd.Series]:
    """Price tier factors: across categories, then each category's about the across-categories one."""
    tier = _credibility(skus["ratio"], pd.Index(skus["price_tier"]))
    across = tier.reindex(skus["price_tier"]).to_numpy()
    within = _credibility(skus["ratio"] / across, _key(skus, ["category", "price_tier"]))
    parts = within.index.str.split(_SEP).str[1]
    return {"tier": tier, "category_tier": within * tier.reindex(parts).to_numpy()}


def _weekdays(panel: DemandPanel, keys: pd.DataFrame, s: ColdStartSettings) -> dict[str, pd.DataFrame]:
    """Weekday profiles (mean 1) of the established series' units over the last `profile_days`: overall, per
    category and per format x category, each shrunk toward the coarser by its count of series."""
    first = max(0, panel.n_days - s.profile_days)
    target = panel.target[:, first:]
    mature = np.isfinite(target) & (_ages(panel, first) >= s.mature_age)
    weekday = (panel.start.weekday() + np.arange(first, panel.n_days)) % _WEEK
    units = np.where(mature, target, 0.0)
    sums = pd.DataFrame(np.stack([units[:, weekday == d].sum(axis=1) for d in range(_WEEK)], axis=1))
    days = pd.DataFrame(np.stack([mature[:, weekday == d].sum(axis=1) for d in range(_WEEK)], axis=1))
    seen = pd.Series((days.sum(axis=1) > 0).to_numpy(dtype=float))

    def profile(columns: Sequence[str]) -> tuple[pd.DataFrame, pd.Series]:
        group = _key(keys, columns) if columns else pd.Index(np.zeros(len(keys), dtype=np.int64))
        rate = sums.groupby(group).sum() / days.groupby(group).sum().replace(0, np.nan)
        shape = rate.div(rate.mean(axis=1), axis=0)
        return pd.DataFrame(shape[np.isfinite(shape).all(axis=1)]), seen.groupby(group).sum()

    overall, _ = profile([])
    flat = pd.Series(np.ones(_WEEK)) if overall.empty else overall.iloc[0]
    category = _toward(*profile(["category"]), np.broadcast_to(flat.to_numpy(), (1, _WEEK)), s.strength)
    fmt_category, counts = profile(["format", "category"])
    parts = fmt_category.index.str.split(_SEP).str[1] if len(fmt_category) else pd.Index([], dtype=object)
    prior = category.reindex(parts).to_numpy()
    prior = np.where(np.isnan(prior), flat.to_numpy()[None, :], prior)
    return {
        "overall": pd.DataFrame([flat.to_numpy()]),
        "category": category,
        "format_category": _toward(fmt_category, counts, prior, s.strength),
    }


def _toward(shape: pd.DataFrame, counts: pd.Series, prior: np.ndarray, strength: float) -> pd.DataFrame:
    n = counts.reindex(shape.index).to_numpy(dtype=float)[:, None]
    return pd.DataFrame((n * shape.to_numpy() + strength * prior) / (n + strength), index=shape.index)


def _launch_curve(panel: DemandPanel, keys: pd.DataFrame, model: AttributePredictor) -> np.ndarray:
    """Per age bucket: what the series launched during the history sold, against the established series of their
    store x category on the same days (x their tier), shrunk toward 1 by the count of SKUs behind the bucket."""
    s = model.settings
    curve = np.ones(len(s.age_buckets))
    launched = np.flatnonzero((panel.launch_index >= 0) & (panel.start_index <= panel.launch_index))
    if launched.size == 0:
        return curve
    target, age = panel.target, _ages(panel)
    mature = np.isfinite(target) & (age >= s.mature_age)
    codes, _ = pd.factorize(_key(keys, ["store_id", "category"]))
    sums = pd.DataFrame(np.where(mature, target, 0.0)).groupby(codes).sum().to_numpy()
    counts = pd.DataFrame(mature.astype(np.float64)).groupby(codes).sum().to_numpy()
    with np.errstate(all="ignore"):
        # Same-day means take out the season, holidays and promotions the launches shared with their cells.
        expected = (sums / counts)[codes[launched]] * model._tier(keys.iloc[launched])[:, None]
    young, sold = age[launched], target[launched]
    usable = (young >= 0) & (young < s.mature_age) & np.isfinite(sold) & np.isfinite(expected)
    bucket = np.searchsorted(np.asarray(s.age_buckets), young, side="right") - 1
    skus = keys["sku"].to_numpy()[launched]
    for b in range(len(curve)):
        mask = usable & (bucket == b)
        denominator = float(np.where(mask, expected, 0.0).sum())
        if denominator > 0:
            n = float(len(set(skus[mask.any(axis=1)])))
            raw = float(np.where(mask, sold, 0.0).sum()) / denominator
            curve[b] = (n * raw + s.strength) / (n + s.strength)
    return curve


def _shapes(frame: pd.DataFrame, skus: pd.DataFrame, model: AttributePredictor) -> tuple[float, float]:
    """Gamma shapes of the SKU and the series multipliers: 1 / their variance about the model across established
    SKUs and series, less what Poisson noise explains."""
    sku_ratio = skus["ratio"].to_numpy() / model._tier(_tier_frame(skus))
    sku_var = float(np.var(sku_ratio)) - float(np.mean(1.0 / skus["expected"].to_numpy()))
    expected = model._cell_level(frame) * skus["ratio"].reindex(frame["sku"]).to_numpy() * model.settings.level_days
    keep = np.isfinite(expected) & (expected > 0)
    series_ratio = frame["rate"].to_numpy()[keep] * model.settings.level_days / expected[keep]
    series_var = float(np.var(series_ratio)) - float(np.mean(1.0 / expected[keep])) if keep.any() else 0.0
    # A floor: a prior never narrower than a standard deviation of 20%, which a model this simple always misses by.
    return 1.0 / max(sku_var, 0.04), 1.0 / max(series_var, 0.04)


def _tier_frame(skus: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"category": skus["category"].to_numpy(), "price_tier": skus["price_tier"].to_numpy()})


def _evidence(model: AttributePredictor, panel: DemandPanel) -> tuple[np.ndarray, np.ndarray]:
    """Per series: the units sold over its last `evidence_days` observed days and what the model expected of them."""
    first = max(0, panel.n_days - model.settings.evidence_days)
    expected = model.expected(panel, first, panel.n_days - first)
    sold = panel.target[:, first:]
    seen = np.isfinite(sold)
    return np.where(seen, sold, 0.0).sum(axis=1), np.where(seen, expected, 0.0).sum(axis=1)


def _dispersion(panel: DemandPanel, keys: pd.DataFrame, rates: pd.Series, model: AttributePredictor) -> float:
    """Daily dispersion of the established series about their own recent rate x weekday (method of moments)."""
    first = max(0, panel.n_days - model.settings.level_days)
    rows = rates.index.to_numpy()
    sold = panel.target[rows, first:]
    weekday = (panel.start.weekday() + np.arange(first, panel.n_days)) % _WEEK
    mean = rates.to_numpy()[:, None] * model.weekday(keys.iloc[rows])[:, weekday]
    seen = np.isfinite(sold)
    excess = float(np.where(seen, (sold - mean) ** 2 - mean, 0.0).sum())
    scale = float(np.where(seen, mean**2, 0.0).sum())
    return float(np.clip(excess / scale, 0.0, 4.0)) if scale > 0 else 0.0
