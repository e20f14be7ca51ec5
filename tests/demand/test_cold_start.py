"""The attribute-based cold-start model: forecasts of launches from their store, category, price tier and age, and
from what they already sold, on small panels whose demand is known."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from shelfwise.demand.cold_start import AttributeEstimator, category_average_paths
from shelfwise.demand.metrics import score
from shelfwise.demand.models import HORIZON
from shelfwise.demand.series import DemandPanel

START = dt.date(2024, 1, 1)  # a Monday
WEEKLY = np.array([0.8, 0.8, 0.9, 0.9, 1.1, 1.6, 0.9])
DAYS = 280


@dataclass(frozen=True)
class Sku:
    name: str
    category: str
    tier: str
    popularity: float
    launch: int
    department: str = "home"


def ramp(age: np.ndarray) -> np.ndarray:
    """A launch sells 30% of its level on day one, 90% after six weeks."""
    return np.where(age < 0, 0.0, 0.3 + 0.7 * (1 - np.exp(-np.maximum(age, 0) / 20)))


def panel_of(
    skus: list[Sku], stores: dict[str, float], days: int = DAYS, seed: int = 0, fmt: str = "mall"
) -> tuple[DemandPanel, np.ndarray]:
    """(history of `days` days, Poisson demand of the `HORIZON` days after it) of every SKU at every store:
    store size x popularity x weekday x launch ramp."""
    rng = np.random.default_rng(seed)
    rows, means = [], []
    day = np.arange(days + HORIZON)
    for store, size in stores.items():
        for sku in skus:
            rows.append(
                {
                    "store_id": store,
                    "sku": sku.name,
                    "region": "north",
                    "format": fmt,
                    "department": sku.department,
                    "category": sku.category,
                    "brand": "b",
                    "price_tier": sku.tier,
                }
            )
            means.append(size * sku.popularity * WEEKLY[(START.weekday() + day) % 7] * ramp(day - sku.launch))
    launch = np.tile([s.launch for s in skus], len(stores))
    sold = rng.poisson(np.array(means)).astype(np.float32)
    sold[day[None, :] < launch[:, None]] = np.nan
    panel = DemandPanel(
        pd.DataFrame(rows),
        START,
        sold[:, :days],
        np.zeros((len(rows), days), dtype=bool),
        np.clip(launch, 0, None),
        launch,
    )
    return panel, sold[:, days:]


def catalogue(seed: int = 0, launches: int = 12, tier_effect: float = 1.0) -> list[Sku]:
    """Established SKUs of two categories (one three times the other's sales) and three price tiers, and SKUs
    launched all through the history, so the launch curve can be learned."""
    rng = np.random.default_rng(seed)
    tiers = {"low": 1.0, "mid": 1.0 + (tier_effect - 1) / 2, "high": tier_effect}
    skus = []
    for category, level in (("a", 3.0), ("b", 1.0)):
        for tier, factor in tiers.items():
            for k in range(5):
                skus.append(Sku(f"{category}-{tier}-{k}", category, tier, level * factor * rng.lognormal(0, 0.2), -200))
    for k in range(launches):
        category = "ab"[k % 2]
        skus.append(Sku(f"new-{k}", category, "mid", 3.0 if category == "a" else 1.0, 40 + 16 * k))
    return skus


def new_skus(names: list[tuple[str, str, str]], launch: int) -> list[Sku]:
    return [Sku(name, category, tier, 1.0, launch) for name, category, tier in names]


def test_paths_are_whole_units_of_the_right_shape_and_repeat_with_a_seed() -> None:
    skus = [*catalogue(), *new_skus([("x", "a", "mid")], DAYS - 10), *new_skus([("y", "b", "low")], DAYS + 2)]
    history, _ = panel_of(skus, {"S1": 1.0, "S2": 1.5})
    model = AttributeEstimator().train(history)
    launches = history.select(history.start_index > DAYS - 28)
    assert len(launches.keys) == 4
    paths = model.predict(launches, HORIZON, n_paths=50, seed=3)
    assert paths.shape == (len(launches.keys), 50, HORIZON)
    assert paths.dtype == np.float32
    assert (paths >= 0).all()
    assert (paths == np.round(paths)).all()
    assert np.array_equal(paths, model.predict(launches, HORIZON, n_paths=50, seed=3))
    assert not np.array_equal(paths, model.predict(launches, HORIZON, n_paths=50, seed=4))


def test_a_store_twice_the_size_gets_about_twice_the_forecast() -> None:
    skus = [*catalogue(), *new_skus([("x", "a", "mid")], DAYS + 2)]
    history, _ = panel_of(skus, {"small": 1.0, "big": 2.0})
    model = AttributeEstimator().train(history)
    x = history.select((history.keys["sku"] == "x").to_numpy())
    mean = model.mean(x).sum(axis=1)
    by_store = dict(zip(x.keys["store_id"], mean, strict=True))
    assert by_store["big"] / by_store["small"] == pytest.approx(2.0, rel=0.1)


def test_a_category_and_a_price_tier_that_sell_more_get_more() -> None:
    names = [("a-low", "a", "low"), ("a-high", "a", "high"), ("b-low", "b", "low"), ("b-high", "b", "high")]
    skus = [*catalogue(tier_effect=2.0), *new_skus(names, DAYS + 1)]
    history, _ = panel_of(skus, {"S1": 1.0, "S2": 1.0})
    model = AttributeEstimator().train(history)
    launches = history.select(history.keys["sku"].isin([n for n, _, _ in names]).to_numpy())
    total = pd.Series(model.mean(launches).sum(axis=1)).groupby(launches.keys["sku"].to_numpy()).sum()
    assert total["a-low"] > 2 * total["b-low"]  # category a sells three times what b does
    assert total["a-high"] > 1.4 * total["a-low"]  # the high tier twice the low one
    assert total["b-high"] > 1.4 * total["b-low"]


def test_a_price_tier_that_does_not_matter_is_shrunk_to_nothing() -> None:
    history, _ = panel_of(catalogue(tier_effect=1.0), {"S1": 1.0, "S2": 1.0})
    tiers = AttributeEstimator().train(history).tiers["category_tier"]
    assert np.allclose(tiers.to_numpy(), 1.0, atol=0.1)


def test_the_launch_curve_follows_age() -> None:
    skus = [*catalogue(launches=14), *new_skus([("x", "a", "mid")], DAYS - 1)]
    history, _ = panel_of(skus, {"S1": 1.0, "S2": 1.0})
    model = AttributeEstimator().train(history)
    curve = model.launch  # weekly buckets, then fortnightly
    assert curve[0] < 0.6 < curve[-1]
    assert (np.diff(curve) > -0.1).all()
    x = history.select((history.keys["sku"] == "x").to_numpy())
    weeks = model.mean(x).reshape(len(x.keys), 4, 7).sum(axis=2)
    assert (np.diff(weeks, axis=1) > 0).all()  # a day-old launch sells more each week
    assert model.launch_factor(np.array([-1, 0, 200])).tolist() == [0.0, curve[0], 1.0]


def test_what_a_launch_already_sold_moves_its_forecast() -> None:
    skus = [*catalogue(), Sku("hit", "b", "mid", 4.0, DAYS - 21), Sku("flop", "b", "mid", 0.25, DAYS - 21)]
    history, _ = panel_of(skus, {"S1": 1.0, "S2": 1.0})
    model = AttributeEstimator().train(history)
    launches = history.select(history.keys["sku"].isin(["hit", "flop"]).to_numpy())
    per_series = pd.Series(model.mean(launches).sum(axis=1)).groupby(launches.keys["sku"].to_numpy()).mean()
    prior = model.expected(launches, DAYS, HORIZON).sum(axis=1).mean()  # the same for both: same attributes
    assert per_series["hit"] > 2.5 * prior  # sold four times the category's rate
    assert per_series["flop"] < 0.6 * prior  # a quarter of it


def test_unknown_stores_and_categories_fall_back_to_coarser_groups() -> None:
    history, _ = panel_of(catalogue(), {"S1": 1.0, "S2": 2.0})
    model = AttributeEstimator().train(history)
    # A category the history has no established series of, in a known department and in a new one, at a known
    # store, a store never seen of a known format and one of a new format.
    skus = [Sku("c1", "c", "mid", 1.0, DAYS + 3), Sku("d1", "d", "mid", 1.0, DAYS + 3, department="garden")]
    for stores, fmt in (({"S1": 1.0}, "mall"), ({"S9": 1.0}, "mall"), ({"S8": 1.0}, "kiosk")):
        unknown, _ = panel_of(skus, stores, fmt=fmt)
        mean = model.mean(unknown)
        assert np.isfinite(mean).all()
        assert (mean[:, 3:].sum(axis=1) > 0).all()
        assert (mean[:, :3] == 0).all()  # not yet on sale
        assert np.isfinite(model.predict(unknown, n_paths=20)).all()


def test_a_history_too_young_for_established_series_still_fits() -> None:
    skus = [Sku(f"s{k}", "ab"[k % 2], "mid", 2.0, 0) for k in range(6)]
    history, _ = panel_of(skus, {"S1": 1.0}, days=40)
    model = AttributeEstimator().train(history)
    assert np.isfinite(model.mean(history)).all()
    assert model.mean(history).mean() == pytest.approx(2.0 * ramp(np.array([50]))[0], rel=0.3)


def test_it_beats_the_category_average_where_attributes_matter() -> None:
    names = [(f"n-{c}-{t}-{k}", c, t) for c in "ab" for t in ("low", "high") for k in range(3)]
    skus = [*catalogue(tier_effect=3.0), *new_skus(names, DAYS - 10)]
    history, future = panel_of(skus, {"S1": 1.0, "S2": 1.5}, seed=1)
    launches = history.start_index > DAYS - 28
    series = history.select(launches)
    model = AttributeEstimator().train(history).predict(series, n_paths=100, seed=0)
    baseline = category_average_paths(history, series, n_paths=100, seed=0)
    mine = score(future[launches], model, series.target)
    theirs = score(future[launches], baseline, series.target)
    assert mine.wql < 0.8 * theirs.wql
    assert abs(mine.bias) < abs(theirs.bias)


def test_the_batch_forecast_gives_cold_starts_the_attribute_model() -> None:
    from shelfwise.demand.batch_forecast import forecast_active

    skus = [*catalogue(), *new_skus([("x", "a", "mid"), ("y", "b", "mid")], DAYS - 5)]
    history, _ = panel_of(skus, {"S1": 1.0, "S2": 1.0})
    batch = forecast_active(history, "seasonal_naive", None, 40, seed=0)  # type: ignore[arg-type]
    cold = batch.panel.keys["sku"].isin(["x", "y"]).to_numpy()
    assert np.array_equal(batch.cold_start, cold)
    model = AttributeEstimator().train(history)
    assert np.array_equal(batch.paths[cold], model.predict(batch.panel.select(cold), HORIZON, 40, seed=0))


def test_the_launch_backtest_scores_both_kinds_of_launch_against_the_category_average() -> None:
    from shelfwise.demand.cold_start_backtest import (
        ALL,
        ATTRIBUTE_MODEL,
        BEFORE,
        CATEGORY_AVERAGE,
        INSIDE,
        run_launch_backtest,
    )

    names = [(f"n-{c}-{k}", c, "mid") for c in "ab" for k in range(3)]
    skus = [*catalogue(), *new_skus(names[:3], DAYS - 20), *new_skus(names[3:], DAYS - 45)]
    history, _ = panel_of(skus, {"S1": 1.0, "S2": 1.5}, seed=2)
    result = run_launch_backtest(history, windows=2, n_paths=50)
    assert list(result.scores) == ["sales"]  # no true demand given
    scores = result.scores["sales"]
    assert set(scores) == {BEFORE, INSIDE, ALL}
    assert result.series[ALL] == result.series[BEFORE] + result.series[INSIDE]
    assert scores[ALL][ATTRIBUTE_MODEL].wql < scores[ALL][CATEGORY_AVERAGE].wql


def test_the_local_runs_launch_chart_is_the_latest_launch_forecast_a_week_after_it_went_on_sale() -> None:
    from shelfwise.demand.report import launch_example

    panel, _ = panel_of(catalogue(), {"S1": 1.0, "S2": 2.0})
    example = launch_example(panel, days_on_sale=7)
    assert example is not None
    launches = [40 + 16 * k for k in range(12) if 40 + 16 * k + 7 + HORIZON <= DAYS]
    assert example["cutoff"] == (START + dt.timedelta(days=max(launches) + 7)).isoformat()
    assert len(example["history"]) == 7
    assert len(example["sales"]) == HORIZON
    q = example["quantiles"]
    assert all(lo <= mid <= hi for lo, mid, hi in zip(q["0.05"], q["0.50"], q["0.95"], strict=True))
    # a panel without a launch whose four weeks it holds has nothing to show
    assert launch_example(panel.head(45)) is None
