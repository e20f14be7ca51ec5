"""Cold starts from visual neighbours: small panels whose SKUs have embeddings, with demand tied to the look or not."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from shelfwise.demand.cold_start import AttributeEstimator
from shelfwise.demand.metrics import score
from shelfwise.demand.models import HORIZON
from shelfwise.demand.series import DemandPanel
from shelfwise.demand.visual_cold_start import (
    Embeddings,
    EmbeddingsError,
    NeighbourSettings,
    VisualNeighbourEstimator,
)

START = dt.date(2024, 1, 1)
DAYS = 200
STORES = {"S1": 1.0, "S2": 1.5}
DIM = 6


def catalogue(
    looks_matter: bool, seed: int = 0, per_category: int = 24, tier_effect: float = 1.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """(SKUs: sku, category, price_tier, popularity, launch; their embeddings). Category `a` sells three times `b`.
    A SKU's look is its category's direction plus a style; where looks matter its popularity follows the style's
    first coordinate, else it is drawn apart from it."""
    rng = np.random.default_rng(seed)
    tiers = {"low": 1.0, "high": tier_effect}
    rows, vectors = [], []
    for c, (category, level) in enumerate((("a", 3.0), ("b", 1.0))):
        for k in range(per_category):
            style = rng.normal(0, 1, DIM - 2)
            tier = ("low", "high")[k % 2]
            drawn = style[0] if looks_matter else rng.normal()
            popularity = level * tiers[tier] * float(np.exp(0.7 * drawn))
            rows.append({"sku": f"{category}{k:02d}", "category": category, "price_tier": tier,
                         "popularity": popularity, "launch": -150})  # fmt: skip
            vectors.append(np.concatenate([np.eye(2)[c] * 2.0, style * 0.5]))
    return pd.DataFrame(rows), np.array(vectors, dtype=np.float32)


def launch(skus: pd.DataFrame, vectors: np.ndarray, name: str, like: str, day: int, **changes: object) -> tuple:
    """A new SKU that looks almost exactly like `like` (and sells like it where looks matter), launching on `day`."""
    row = skus[skus["sku"] == like].iloc[0].to_dict() | {"sku": name, "launch": day} | changes
    vector = vectors[skus.index[skus["sku"] == like][0]] + 0.01
    return pd.concat([skus, pd.DataFrame([row])], ignore_index=True), np.vstack([vectors, vector])


def panel_of(skus: pd.DataFrame, days: int = DAYS, seed: int = 0) -> tuple[DemandPanel, np.ndarray]:
    """(panel of `days` days, demand of the `HORIZON` days after) of every SKU at every store: Poisson demand of
    store size x popularity, ramping up over the weeks after launch."""
    rng = np.random.default_rng(seed)
    day = np.arange(days + HORIZON)
    keys, means = [], []
    for store, size in STORES.items():
        for sku in skus.itertuples():
            keys.append({"store_id": store, "sku": sku.sku, "region": "r", "format": "mall", "department": "d",
                         "category": sku.category, "brand": "b", "price_tier": sku.price_tier})  # fmt: skip
            age = day - sku.launch
            ramp = np.where(age < 0, 0.0, 0.4 + 0.6 * (1 - np.exp(-np.maximum(age, 0) / 15)))
            means.append(size * sku.popularity * ramp)
    launch_day = np.tile(skus["launch"].to_numpy(), len(STORES))
    sold = rng.poisson(np.array(means)).astype(np.float32)
    sold[day[None, :] < launch_day[:, None]] = np.nan
    panel = DemandPanel(
        pd.DataFrame(keys),
        START,
        sold[:, :days],
        np.zeros((len(keys), days), dtype=bool),
        np.clip(launch_day, 0, None),
        launch_day,
    )
    return panel, sold[:, days:]


def embeddings(skus: pd.DataFrame, vectors: np.ndarray) -> Embeddings:
    return Embeddings(tuple(skus["sku"]), vectors)


def rows_of(panel: DemandPanel, *skus: str) -> DemandPanel:
    return panel.select(panel.keys["sku"].isin(skus).to_numpy())


def test_means_and_paths_have_the_attribute_models_shape_and_equal_it_without_neighbours() -> None:
    skus, vectors = catalogue(looks_matter=True)
    skus, vectors = launch(skus, vectors, "new", like="a03", day=DAYS + 3)
    panel, _ = panel_of(skus)
    new = rows_of(panel, "new")
    attributes = AttributeEstimator().train(panel)
    visual = VisualNeighbourEstimator().train(panel, embeddings(skus, vectors))
    assert visual.mean(new).shape == attributes.mean(new).shape == (len(STORES), HORIZON)
    paths = visual.predict(new, HORIZON, n_paths=30, seed=1)
    assert paths.shape == attributes.predict(new, HORIZON, n_paths=30, seed=1).shape
    assert paths.dtype == np.float32
    assert (paths >= 0).all()
    assert (paths == np.round(paths)).all()
    assert (visual.mean(new)[:, :3] == 0).all()  # not on sale yet
    # A new SKU without an embedding has no neighbours: the attribute model's forecast, path for path.
    blind = VisualNeighbourEstimator().train(panel, embeddings(skus.iloc[:-1], vectors[:-1]))
    assert np.array_equal(blind.predict(new, HORIZON, 30, seed=1), attributes.predict(new, HORIZON, 30, seed=1))


def test_neighbours_come_from_the_same_category_first() -> None:
    skus, vectors = catalogue(looks_matter=True)
    # A `b` SKU that looks exactly like the new `a` SKU: the closest of all, yet after every `a` neighbour.
    skus, vectors = launch(skus, vectors, "new", like="a03", day=DAYS + 3)
    skus, vectors = launch(skus, vectors, "twin-b", like="a03", day=-150, category="b")
    panel, _ = panel_of(skus)
    emb = embeddings(skus, vectors)
    model = VisualNeighbourEstimator(NeighbourSettings(k=5)).train(panel, emb)
    rows, weights = model.neighbours("new", "a")
    chosen = model.established.skus[rows]
    assert "twin-b" in model.established.skus  # established, and the most similar
    assert len(chosen) == 5
    assert (model.established.category[rows] == "a").all()
    assert chosen[0] == "a03"  # the closest of its category, weighing most
    assert weights[0] == weights.max()
    assert weights.sum() == pytest.approx(1.0)
    wide = VisualNeighbourEstimator(NeighbourSettings(k=30)).train(panel, emb)
    rows, _ = wide.neighbours("new", "a")
    assert wide.established.category[rows].tolist() == ["a"] * 24 + ["b"] * 6  # all 24 of `a`, then the nearest of `b`
    assert wide.established.skus[rows][24] == "twin-b"


def test_neighbour_demand_on_or_after_the_as_of_date_is_never_read() -> None:
    skus, vectors = catalogue(looks_matter=True)
    skus, vectors = launch(skus, vectors, "new", like="a03", day=DAYS - 40)
    # A look-alike launched after the as-of date and selling fifty times more: not established then.
    skus, vectors = launch(skus, vectors, "later", like="a03", day=DAYS - 30, popularity=150.0)
    panel, _ = panel_of(skus, days=DAYS + 40)
    as_of = START + dt.timedelta(days=DAYS - 10)
    emb = embeddings(skus, vectors)
    future = panel.units.copy()
    future[:, DAYS - 10 :] *= 50  # every series sells fifty times more from the as-of date on
    boosted = DemandPanel(panel.keys, START, future, panel.censored, panel.start_index, panel.launch_index)
    new = rows_of(panel.head(DAYS - 10), "new")
    model = VisualNeighbourEstimator().train(panel, emb, as_of)
    assert "later" not in model.established.skus
    assert np.array_equal(model.mean(new), VisualNeighbourEstimator().train(boosted, emb, as_of).mean(new))
    # The check can fail: the same boost a week earlier moves the forecast.
    past = panel.units.copy()
    past[:, DAYS - 17 :] *= 50
    earlier = DemandPanel(panel.keys, START, past, panel.censored, panel.start_index, panel.launch_index)
    assert not np.allclose(model.mean(new), VisualNeighbourEstimator().train(earlier, emb, as_of).mean(new))
    with pytest.raises(ValueError, match="as_of"):
        VisualNeighbourEstimator().train(panel, emb, START + dt.timedelta(days=DAYS + 41))


def test_the_neighbours_demand_is_scaled_by_the_new_skus_price_tier() -> None:
    skus, vectors = catalogue(looks_matter=True, tier_effect=3.0, per_category=30)
    # Two new SKUs that look alike, one in each tier; their neighbours are the same SKUs.
    skus, vectors = launch(skus, vectors, "new-low", like="a04", day=DAYS + 1)
    skus, vectors = launch(skus, vectors, "new-high", like="a04", day=DAYS + 1, price_tier="high")
    vectors[-1] = vectors[-2]
    panel, _ = panel_of(skus)
    model = VisualNeighbourEstimator(NeighbourSettings(credibility=False)).train(panel, embeddings(skus, vectors))
    new = rows_of(panel, "new-low", "new-high")
    total = pd.Series(model.mean(new).sum(axis=1)).groupby(new.keys["sku"].to_numpy()).sum()
    assert total["new-high"] / total["new-low"] == pytest.approx(3.0, rel=0.3)


def test_look_alikes_that_sell_alike_earn_credibility_and_beat_the_attribute_model() -> None:
    names = [f"a{k:02d}" for k in range(0, 24, 3)] + [f"b{k:02d}" for k in range(1, 24, 3)]
    results = {}
    rng = np.random.default_rng(6)
    for looks_matter in (True, False):
        skus, vectors = catalogue(looks_matter, seed=4, per_category=60)
        for name in names:
            # A look-alike sells like its twin where looks matter, else as its category's SKUs do, at random.
            level = 3.0 if name[0] == "a" else 1.0
            popularity = skus.loc[skus["sku"] == name, "popularity"].iloc[0]
            fresh = level * float(np.exp(0.7 * rng.normal()))
            skus, vectors = launch(
                skus, vectors, f"new-{name}", like=name, day=DAYS + 2, popularity=popularity if looks_matter else fresh
            )
        panel, future = panel_of(skus, seed=5)
        new = panel.keys["sku"].str.startswith("new").to_numpy()
        series = panel.select(new)
        model = VisualNeighbourEstimator().train(panel, embeddings(skus, vectors))
        mine = score(future[new], model.predict(series, n_paths=100), series.target)
        theirs = score(future[new], AttributeEstimator().train(panel).predict(series, n_paths=100), series.target)
        results[looks_matter] = (model.credibility, mine.wql, theirs.wql)
    credibility, mine, theirs = results[True]
    assert credibility > 0.5
    assert mine < 0.85 * theirs
    credibility, mine, theirs = results[False]
    assert credibility < 0.3  # looks that say nothing of sales are worth little
    assert mine < 1.1 * theirs


def test_bad_embeddings_are_named() -> None:
    with pytest.raises(EmbeddingsError, match="vectors must be"):
        Embeddings(("x", "y"), np.ones((3, 4), dtype=np.float32))
    with pytest.raises(EmbeddingsError, match="unique"):
        Embeddings(("x", "x"), np.ones((2, 4), dtype=np.float32))
    with pytest.raises(EmbeddingsError, match="finite and non-zero"):
        Embeddings(("x", "y"), np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    unit = Embeddings(("x",), np.array([[3.0, 4.0]], dtype=np.float32))
    assert np.allclose(unit.vectors, [[0.6, 0.8]])
    with pytest.raises(ValueError, match="k must be"):
        NeighbourSettings(k=0)


def test_the_cold_start_bench_scores_every_embeddings_neighbours_beside_both_baselines() -> None:
    from rich.console import Console

    from shelfwise.bench.cold_start import (
        LEARNED,
        PIXELS,
        ColdStartBench,
        fits_table,
        held_out_skus,
        key_line,
        method,
        run_cold_start_bench,
    )
    from shelfwise.demand.cold_start_backtest import ALL, ATTRIBUTE_MODEL, CATEGORY_AVERAGE

    skus, vectors = catalogue(looks_matter=True, seed=2, per_category=40)
    for k, day in enumerate((DAYS - 50, DAYS - 40, DAYS - 20, DAYS - 10)):
        skus, vectors = launch(skus, vectors, f"new{k}", like=f"{'ab'[k % 2]}{3 * k:02d}", day=day)
    panel, _ = panel_of(skus, seed=3)
    held_out = held_out_skus(panel, DAYS - 56)
    assert held_out == {"new0", "new1", "new2", "new3"}
    rng = np.random.default_rng(0)
    emb = {LEARNED: embeddings(skus, vectors), PIXELS: embeddings(skus, rng.normal(size=vectors.shape))}
    categories = dict(zip(skus["sku"], skus["category"], strict=True))
    result, fits = run_cold_start_bench(panel, None, emb, held_out, categories, windows=2, n_paths=40)
    scores = result.scores["sales"][ALL]
    assert set(scores) == {ATTRIBUTE_MODEL, CATEGORY_AVERAGE} | {method(e, z) for e in emb for z in (False, True)}
    assert result.skus[ALL] == 4
    assert len(fits[LEARNED].credibility) == 2  # one fit a window
    assert fits[LEARNED].category_precision_at_1 == 1.0  # the launches' twins are of their category
    assert np.mean(fits[LEARNED].credibility) > np.mean(fits[PIXELS].credibility)  # random vectors say nothing
    assert scores[method(LEARNED)].wql < scores[ATTRIBUTE_MODEL].wql
    console = Console(record=True, width=200)
    bench = ColdStartBench(result, fits, len(held_out), len(skus) - 4, 1, 0.0)
    console.print(fits_table(bench))
    line = key_line(bench)
    assert line.startswith("cold-start: ")
    assert f"visual neighbours {scores[method(LEARNED)].wql:.3f}" in line
