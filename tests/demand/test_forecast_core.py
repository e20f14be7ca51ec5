"""The forecasting core: the panel, calendar covariates, metrics, baseline paths and served records."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shelfwise.demand.calendar import ALL_COVARIATES, COVARIATES, RegionalHolidays, calendar_covariates
from shelfwise.demand.forecast_records import (
    CUMULATIVE_LEVELS,
    DAILY_QUANTILES,
    cumulative_demand,
    forecast_records,
    quantile_name,
)
from shelfwise.demand.inventory import order_up_to_decision
from shelfwise.demand.metrics import score
from shelfwise.demand.models import StaticCodes, event_days, event_sampler, gluonts_entries, seasonal_naive_paths
from shelfwise.demand.series import build_panel, load_panel, save_panel


def _frames(units: list[list[float]], censored: list[tuple[int, int]] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    start = dt.date(2024, 1, 1)
    rows = []
    for i, series in enumerate(units):
        for d, value in enumerate(series):
            if np.isnan(value):
                continue
            rows.append(
                {
                    "store_id": f"S{i}",
                    "sku": "K1",
                    "date": start + dt.timedelta(days=d),
                    "units": int(value),
                    "censored": (i, d) in censored,
                }
            )
    static = pd.DataFrame(
        {
            "store_id": [f"S{i}" for i in range(len(units))],
            "sku": "K1",
            "region": "north",
            "format": "mall",
            "department": "home",
            "category": "kitchen",
            "price_tier": "mid",
            "launch_date": start,
        }
    )
    return pd.DataFrame(rows), static


def test_censored_days_are_missing_in_the_target_not_zeros_and_their_sales_are_kept() -> None:
    daily, static = _frames([[3, 0, 5, 2]], censored=[(0, 1)])
    panel = build_panel(daily, static)
    assert np.isnan(panel.target[0, 1])
    assert panel.units[0, 1] == 0
    assert panel.target[0, 0] == 3
    assert panel.target[0, 2] == 5


def test_days_before_a_series_starts_are_missing_and_its_start_is_recorded() -> None:
    daily, static = _frames([[1, 1, 1, 1], [np.nan, np.nan, 2, 2]])
    panel = build_panel(daily, static)
    assert panel.start_index.tolist() == [0, 2]
    assert np.isnan(panel.target[1, :2]).all()


def test_black_friday_and_easter_covariates_fall_on_their_dates_in_any_year() -> None:
    start = dt.date(2030, 1, 1)
    cov = calendar_covariates(start, 366)
    black_friday = COVARIATES.index("black_friday")
    easter = COVARIATES.index("easter_sunday")
    assert np.flatnonzero(cov[black_friday]).tolist() == [(dt.date(2030, 11, 29) - start).days]
    assert np.flatnonzero(cov[easter]).tolist() == [(dt.date(2030, 4, 21) - start).days]
    # The run-up grows towards Christmas Eve.
    run_up = cov[COVARIATES.index("christmas_run_up")]
    assert run_up[(dt.date(2030, 12, 23) - start).days] > run_up[(dt.date(2030, 12, 1) - start).days] > 0


def test_a_series_sees_its_own_regions_holidays_and_their_eves_and_no_other_regions() -> None:
    daily, static = _frames([[1] * 10, [1] * 10, [1] * 10])
    static["region"] = ["north", "south", "national"]
    holidays = RegionalHolidays.from_rows([("north", dt.date(2024, 1, 4)), ("south", dt.date(2024, 1, 12))])
    panel = build_panel(daily, static, holidays)
    entries = list(gluonts_entries(panel, StaticCodes.fit(panel.keys), future_days=5))
    eve, day = ALL_COVARIATES.index("regional_holiday_eve"), ALL_COVARIATES.index("regional_holiday")
    features = [entry["feat_dynamic_real"] for entry in entries]
    assert all(f.shape == (len(ALL_COVARIATES), 15) for f in features)
    assert np.flatnonzero(features[0][day]).tolist() == [3]
    assert np.flatnonzero(features[0][eve]).tolist() == [2]
    # South's holiday falls in the forecast days: known in advance, so the features carry it.
    assert np.flatnonzero(features[1][day]).tolist() == [11]
    assert not features[2][[eve, day]].any()  # a region without holidays (the online store's)
    # The shared calendar rows are the same for every series.
    assert all((f[: len(COVARIATES)] == features[0][: len(COVARIATES)]).all() for f in features)


def test_the_holiday_calendar_survives_saving_and_loading_the_panel(tmp_path: Path) -> None:
    daily, static = _frames([[1, 2, 3]])
    holidays = RegionalHolidays.from_rows([("north", dt.date(2024, 3, 17)), ("north", dt.date(2025, 3, 17))])
    save_panel(build_panel(daily, static, holidays), tmp_path)
    assert load_panel(tmp_path).holidays == holidays
    assert load_panel(tmp_path).head(2).holidays == holidays


def test_a_holiday_calendar_without_a_region_or_date_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="region"):
        RegionalHolidays.from_frame(pd.DataFrame({"date": [dt.date(2024, 1, 1)]}))
    with pytest.raises(ValueError, match="without a date"):
        RegionalHolidays.from_frame(pd.DataFrame({"region": ["north"], "date": [None]}))


def test_event_days_are_the_short_retail_events_not_the_long_ramps() -> None:
    start = dt.date(2023, 11, 1)
    days = {start + dt.timedelta(days=int(i)) for i in event_days(start, 92)}
    assert dt.date(2023, 11, 24) in days  # Black Friday
    assert dt.date(2023, 12, 25) in days
    assert dt.date(2023, 12, 10) not in days  # the Christmas run-up, sampled often enough uniformly
    assert dt.date(2024, 1, 15) not in days  # January


def test_event_windows_put_the_event_among_their_forecast_days() -> None:
    np.random.seed(0)
    horizon, length, before_end = 28, 400, 30
    uniform = event_sampler((), rate=3.0, horizon=horizon)
    sampler = event_sampler((before_end,), rate=3.0, horizon=horizon)
    ts = np.ones(length)
    plain = np.concatenate([uniform(ts) for _ in range(500)])
    splits = np.concatenate([sampler(ts) for _ in range(500)])
    event = length - before_end
    covering = (splits <= event) & (event < splits + horizon)
    plain_covering = (plain <= event) & (event < plain + horizon)
    # About 3 event windows per pass on top of the one uniform window, and the uniform ones rarely cover it.
    assert covering.sum() > 500 * 2.5
    assert plain_covering.mean() < 0.15
    assert splits.max() <= length - horizon
    # A series younger than a forecast window gets no window at all, even with an event among its days.
    recent = event_sampler((3,), rate=3.0, horizon=horizon)
    assert sum(recent(np.ones(horizon - 5)).size for _ in range(20)) == 0


def test_a_perfect_forecast_scores_zero_loss_full_coverage_and_no_bias() -> None:
    actual = np.array([[1.0, 2.0, 3.0, 4.0]])
    samples = np.repeat(actual[:, None, :], 50, axis=1)
    history = np.array([[1.0, 2, 3, 4, 5, 6, 7, 2, 3, 4, 5, 6, 7, 8]])
    scores = score(actual, samples, history)
    assert scores.wql == 0
    assert scores.mase == 0
    assert scores.bias == 0
    assert scores.coverage_80 == 1


def test_unobserved_days_do_not_count_in_the_scores() -> None:
    actual = np.array([[1.0, 100.0]])
    samples = np.ones((1, 20, 2))
    history = np.arange(14, dtype=float)[None, :]
    observed = np.array([[True, False]])
    assert score(actual, samples, history, observed).wql == 0


def test_an_always_high_forecast_has_positive_bias_and_no_coverage() -> None:
    actual = np.ones((3, 7))
    samples = np.full((3, 30, 7), 3.0)
    scores = score(actual, samples, np.tile(np.arange(21.0), (3, 1)))
    assert scores.bias == pytest.approx(2.0)
    assert scores.coverage_80 == 0


def test_seasonal_naive_repeats_a_noiseless_week() -> None:
    week = [0, 1, 2, 3, 4, 5, 6]
    daily, static = _frames([week * 8])
    paths = seasonal_naive_paths(build_panel(daily, static), horizon=14, n_paths=5)
    assert paths.shape == (1, 5, 14)
    assert (paths[0] == np.array(week * 2, dtype=np.float32)).all()


def test_seasonal_naive_is_unbiased_on_sparse_series() -> None:
    # Mostly zeros: a forecast floored at zero step after step would drift upwards; the last week repeated does not.
    rng = np.random.default_rng(1)
    history = (rng.random(200) < 0.1).astype(int)
    daily, static = _frames([history.tolist()])
    paths = seasonal_naive_paths(build_panel(daily, static), horizon=28, n_paths=50)
    assert paths.min() >= 0
    assert paths[0].mean() == pytest.approx(history[-7:].mean())


def _records(paths: np.ndarray) -> list:
    keys = [(f"S{i}", "K1") for i in range(paths.shape[0])]
    return list(forecast_records(keys, paths, dt.date(2025, 1, 1), "3", [False] * len(keys)))


def test_quantiles_never_cross_and_the_cumulative_distribution_grows_with_the_horizon() -> None:
    rng = np.random.default_rng(0)
    record = _records(rng.negative_binomial(2, 0.4, size=(1, 300, 28)).astype(float))[0]
    daily = np.array([record.quantiles[quantile_name(q)] for q in DAILY_QUANTILES])
    assert (np.diff(daily, axis=0) >= 0).all()
    cumulative = np.array(record.cumulative)
    assert cumulative.shape == (len(CUMULATIVE_LEVELS), 28)
    assert (np.diff(cumulative, axis=1) >= 0).all()
    assert (np.diff(cumulative, axis=0) >= 0).all()


def test_the_quantile_of_cumulative_demand_is_not_the_sum_of_daily_quantiles() -> None:
    # Independent days: their highs rarely coincide, so the 90% quantile of the 28-day total is well below the
    # sum of 28 daily 90% quantiles (which would overstock).
    rng = np.random.default_rng(0)
    record = _records(rng.poisson(5, size=(1, 2000, 28)).astype(float))[0]
    summed_p90 = sum(record.quantiles["p90"])
    p90_of_sum = record.cumulative[CUMULATIVE_LEVELS.index(0.9)][-1]
    assert p90_of_sum < 0.9 * summed_p90
    assert p90_of_sum == pytest.approx(5 * 28 + 1.2816 * np.sqrt(5 * 28), rel=0.03)


def test_a_served_record_drives_an_inventory_decision() -> None:
    rng = np.random.default_rng(0)
    record = _records(rng.poisson(5, size=(1, 2000, 28)).astype(float))[0]
    decision = order_up_to_decision(
        cumulative_demand(record),
        service_level=0.9,
        lead_time_days=7,
        review_period_days=7,
        on_hand=20,
        on_order=0,
    )
    assert decision.order_up_to == pytest.approx(5 * 14 + 1.2816 * np.sqrt(5 * 14), rel=0.05)
    assert decision.order_quantity == pytest.approx(decision.order_up_to - 20)


@pytest.mark.slow
def test_deepar_ensemble_trains_on_censored_days_pools_paths_and_survives_a_round_trip(tmp_path) -> None:
    from shelfwise.demand import model_store
    from shelfwise.demand.models import DeepARSettings, deepar_paths, train_deepar

    rng = np.random.default_rng(0)
    units = [rng.poisson(3 + 2 * np.sin(np.arange(150) * 2 * np.pi / 7) + 2).tolist() for _ in range(4)]
    daily, static = _frames(units, censored=[(0, d) for d in range(100, 110)])
    panel = build_panel(daily, static)
    settings = DeepARSettings(
        context_length=14, hidden_size=8, epochs=1, num_batches_per_epoch=5, batch_size=8, networks=2
    )
    predictor, codes = train_deepar(panel, settings, tmp_path / "work")
    assert len(predictor.members) == 2
    # Different seeds: different networks, not one network twice.
    first, second = (dict(m.prediction_net.named_parameters()) for m in predictor.members)
    assert any(not np.allclose(first[k].detach(), second[k].detach()) for k in first)
    paths = deepar_paths(predictor, codes, panel, n_paths=21)  # shared 11 + 10
    assert paths.shape == (4, 21, 28)
    assert np.isfinite(paths).all()
    assert paths.min() >= 0
    # Negative binomial samples are whole units.
    assert (paths == np.round(paths)).all()

    model_store.save_predictor(tmp_path / "model", model_store.FINAL_PREDICTOR, predictor, codes)
    loaded, loaded_codes = model_store.load_predictor(tmp_path / "model", model_store.FINAL_PREDICTOR)
    assert len(loaded.members) == 2
    assert loaded_codes == codes
    np.testing.assert_array_equal(deepar_paths(loaded, loaded_codes, panel, n_paths=21), paths)


def test_a_model_folder_without_ensemble_members_is_refused_by_name(tmp_path) -> None:
    from shelfwise.demand import model_store

    (tmp_path / model_store.FINAL_PREDICTOR).mkdir()  # the layout of one network, before ensembles
    (tmp_path / model_store.CODES).write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"network-<n>.*train it again"):
        model_store.load_predictor(tmp_path, model_store.FINAL_PREDICTOR)


@pytest.mark.slow
def test_backtest_scores_every_candidate_at_every_level_of_the_last_windows(tmp_path) -> None:
    from shelfwise.demand.backtest import CANDIDATES, LEVELS, BacktestSettings, run_backtest
    from shelfwise.demand.models import DeepARSettings

    rng = np.random.default_rng(0)
    weekly = 3 + 2 * np.sin(np.arange(200) * 2 * np.pi / 7)
    daily, static = _frames([rng.poisson(weekly + i).tolist() for i in range(4)])
    static["region"] = ["north", "north", "south", "south"]
    panel = build_panel(daily, static)
    settings = BacktestSettings(
        windows=2,
        n_paths=30,
        sample_series=3,
        deepar=DeepARSettings(
            context_length=14, hidden_size=8, epochs=1, num_batches_per_epoch=3, batch_size=8, networks=1
        ),
    )
    result = run_backtest(panel, settings, tmp_path, truth=panel.units)
    end = dt.date(2024, 1, 1) + dt.timedelta(days=200)
    assert [w.cutoff for w in result.windows] == [end - dt.timedelta(days=56), end - dt.timedelta(days=28)]
    for window in result.windows:
        assert set(window.scores) == {"sales", "true demand"}
        assert set(window.scores["sales"]) == set(LEVELS)
        assert set(CANDIDATES) <= set(window.scores["sales"]["total"])
        assert window.scores["sales"]["store x sku"]["deepar"].series == 3
    assert result.last_window.paths["deepar"].shape == (3, 30, 28)
