"""The BG/NBD churn baseline: likelihood, fit, predictions and simulation against the paper and simulated truth."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy.integrate import IntegrationWarning, quad
from scipy.optimize import OptimizeResult
from scipy.special import betaln

from shelfwise.churn import bgnbd

# Fader, Hardie and Lee (2005): the CDNOW estimates (log-likelihood -9582.4 on 2,357 customers), time in weeks.
CDNOW = bgnbd.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
# A daily-unit population: faster buyers (mean rate 0.02 a day), a mean dropout probability of 1/7 per purchase.
DAYS = bgnbd.BgNbdParams(r=0.8, alpha=40.0, a=0.5, b=3.0)


def simulate_with_future(
    params: Any, age: np.ndarray, horizon: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, purchases in (T, T + horizon]) from the model's story, written independently of `bgnbd.simulate`.

    Purchases that would happen in (0, T + horizon] without dropout are Poisson(lambda * (T + horizon)); each falls
    in (0, T] with probability T / (T + horizon). The customer drops out at their N-th repeat purchase,
    N ~ Geometric(p), so purchases stop after N in total.
    """
    rate = rng.gamma(params.r, 1.0 / params.alpha, size=age.shape)
    p = rng.beta(params.a, params.b, size=age.shape)
    dropout_at = rng.geometric(p)
    total = rng.poisson(rate * (age + horizon))
    before = rng.binomial(total, age / (age + horizon))
    x = np.minimum(before, dropout_at)
    t_x = np.where(x > 0, age * rng.beta(np.maximum(x, 1), np.maximum(before - x + 1, 1)), 0.0)
    future = np.minimum(np.maximum(dropout_at - before, 0), total - before)
    return x.astype(float), t_x, future.astype(float)


def naive_likelihood(params: Any, x: float, t_x: float, age: float) -> float:
    """Eq. (6) of the paper term by term, with plain gamma and beta functions (only for small x and T)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b

    def beta(p: float, q: float) -> float:
        return math.gamma(p) * math.gamma(q) / math.gamma(p + q)

    rate_part = math.gamma(r + x) * alpha**r / math.gamma(r)
    value = beta(a, b + x) / beta(a, b) * rate_part / (alpha + age) ** (r + x)
    if x > 0:
        value += beta(a + 1, b + x - 1) / beta(a, b) * rate_part / (alpha + t_x) ** (r + x)
    return float(value)


def expected_by_quadrature(params: Any, x: float, t_x: float, age: float, horizon: float) -> float:
    """Eq. (10) without the hypergeometric function: P(alive) * E over p ~ Beta(a, b + x) of
    (1 - ((alpha + T) / (alpha + T + p t)) ** (r + x)) / p, the posterior mean given alive."""
    s, base = params.r + x, params.alpha + age

    def given_p(p: float) -> float:
        return s * horizon / base if p == 0 else -math.expm1(-s * math.log1p(p * horizon / base)) / p

    with warnings.catch_warnings():
        # QUADPACK can doubt reaching 1e-9 with a sharply peaked Beta weight; its result still agrees to 1e-13.
        warnings.simplefilter("ignore", IntegrationWarning)
        integral, _ = quad(given_p, 0, 1, weight="alg", wvar=(params.a - 1, params.b + x - 1), epsabs=0, epsrel=1e-9)
    alive = float(bgnbd.probability_alive(params, x, t_x, age))
    return float(alive * integral / math.exp(betaln(params.a, params.b + x)))


# --- 1. parameter recovery ---------------------------------------------------------------------------------------

# Tolerances are 3.2-4 standard deviations of the estimator at these sizes, measured over 50 seeds: relative SD of
# (r, alpha, a, b, a / (a + b)) = (0.8, 1.4, 3.1, 4.2, 1.3)% for CDNOW with 100k customers and (0.8, 1.0, 3.5, 4.7,
# 1.5)% for DAYS with 50k. At 20k customers b's SD is 8-10%, so a test there could not hold b to 15%.
RECOVERY = {
    "cdnow-weeks": (CDNOW, (27.0, 39.0), 100_000, {"r": 0.03, "alpha": 0.05, "a": 0.12, "b": 0.15, "p": 0.05}),
    "days": (DAYS, (100.0, 400.0), 50_000, {"r": 0.03, "alpha": 0.04, "a": 0.12, "b": 0.15, "p": 0.05}),
}


@pytest.mark.parametrize("case", RECOVERY)
def test_fit_recovers_the_simulated_parameters(case: str) -> None:
    true, (low, high), n, tolerance = RECOVERY[case]
    rng = np.random.default_rng(20050101)
    T = rng.uniform(low, high, n)
    x, t_x = bgnbd.simulate(true, T, rng)

    fitted = bgnbd.fit(x, t_x, T)

    estimates = {
        "r": (fitted.r, true.r),
        "alpha": (fitted.alpha, true.alpha),
        "a": (fitted.a, true.a),
        "b": (fitted.b, true.b),
        "p": (fitted.a / (fitted.a + fitted.b), true.a / (true.a + true.b)),  # mean dropout probability
    }
    for name, (estimate, truth) in estimates.items():
        assert estimate == pytest.approx(truth, rel=tolerance[name]), name
    # The estimate is a maximum of the public log-likelihood (fit has its own vectorised objective and gradient).
    best = bgnbd.log_likelihood(fitted, x, t_x, T).sum()
    assert best >= bgnbd.log_likelihood(true, x, t_x, T).sum()
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.99, 1.01):
            nudged = dataclasses.replace(fitted, **{name: getattr(fitted, name) * factor})
            assert bgnbd.log_likelihood(nudged, x, t_x, T).sum() < best, (name, factor)


def test_fit_does_not_depend_on_the_time_unit() -> None:
    rng = np.random.default_rng(7)
    T = rng.uniform(27.0, 39.0, 5_000)
    x, t_x = bgnbd.simulate(CDNOW, T, rng)

    in_weeks = bgnbd.fit(x, t_x, T)
    in_days = bgnbd.fit(x, 7 * t_x, 7 * T)

    assert in_days.alpha == pytest.approx(7 * in_weeks.alpha, rel=1e-5)
    for name in ("r", "a", "b"):
        assert getattr(in_days, name) == pytest.approx(getattr(in_weeks, name), rel=1e-5)


def test_weights_count_repeated_customers() -> None:
    rng = np.random.default_rng(8)
    T = rng.uniform(100.0, 400.0, 3_000)
    x, t_x = bgnbd.simulate(DAYS, T, rng)
    counts = rng.integers(0, 4, T.size).astype(float)

    weighted = bgnbd.fit(x, t_x, T, weights=counts)
    copies = counts.astype(int)
    repeated = bgnbd.fit(np.repeat(x, copies), np.repeat(t_x, copies), np.repeat(T, copies))

    for name in ("r", "alpha", "a", "b"):
        assert getattr(weighted, name) == pytest.approx(getattr(repeated, name), rel=1e-4)


def test_fit_converges_when_dropout_is_the_same_for_everyone() -> None:
    # p ~ Beta(2e4, 8e4) is p = 0.2 for all: the likelihood keeps rising, ever more slowly, as a and b grow with
    # a / (a + b) fixed, and a single L-BFGS-B run stops with ABNORMAL on that ridge (this seed did, before restarts).
    homogeneous = bgnbd.BgNbdParams(r=0.8, alpha=40.0, a=2e4, b=8e4)
    rng = np.random.default_rng(1)
    T = rng.uniform(100.0, 400.0, 5_000)
    x, t_x = bgnbd.simulate(homogeneous, T, rng)

    fitted = bgnbd.fit(x, t_x, T)

    assert fitted.a + fitted.b > 1e3
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(0.2, rel=0.1)
    assert fitted.r == pytest.approx(0.8, rel=0.1)
    assert fitted.alpha == pytest.approx(40.0, rel=0.15)


def test_fit_reports_the_optimisers_message_when_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def never_converges(fun: Callable[..., object], x0: np.ndarray, **_: object) -> OptimizeResult:
        calls.append(x0)  # improves by a lot on every restart, never succeeds
        return OptimizeResult(x=x0 + 0.1, fun=-float(len(calls)), success=False, message="ABNORMAL: made up")

    monkeypatch.setattr("scipy.optimize.minimize", never_converges)
    with pytest.raises(RuntimeError, match="BG/NBD fit did not converge: ABNORMAL: made up"):
        bgnbd.fit(GOOD["x"], GOOD["t_x"], GOOD["T"])
    assert len(calls) > 1  # restarted before giving up


# --- 2. likelihood -----------------------------------------------------------------------------------------------


def test_log_likelihood_matches_the_formula_of_the_paper() -> None:
    rows = [(0, 0.0, 0.0), (0, 0.0, 5.0), (1, 0.0, 3.0), (1, 2.5, 3.0), (2, 30.43, 38.86), (7, 11.0, 12.0)]
    for params in (CDNOW, DAYS, bgnbd.BgNbdParams(r=2.0, alpha=0.5, a=3.0, b=0.7)):
        x, t_x, T = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
        expected = [math.log(naive_likelihood(params, *row)) for row in rows]
        np.testing.assert_allclose(bgnbd.log_likelihood(params, x, t_x, T), expected, rtol=1e-10, atol=1e-12)


def test_log_likelihood_stays_finite_for_heavy_buyers() -> None:
    values = bgnbd.log_likelihood(CDNOW, [5_000.0, 5_000.0, 0.0], [9e4, 0.0, 0.0], [1e5, 1e5, 1e5])
    assert np.all(np.isfinite(values))


def test_likelihood_is_highest_at_the_true_parameters() -> None:
    rng = np.random.default_rng(11)
    T = rng.uniform(100.0, 400.0, 20_000)
    x, t_x = bgnbd.simulate(DAYS, T, rng)
    at_truth = bgnbd.log_likelihood(DAYS, x, t_x, T).sum()
    for name in ("r", "alpha", "a", "b"):
        for factor in (0.8, 1.25):
            perturbed = dataclasses.replace(DAYS, **{name: getattr(DAYS, name) * factor})
            assert bgnbd.log_likelihood(perturbed, x, t_x, T).sum() < at_truth - 5, (name, factor)


# --- 3. predictions: published CDNOW values and internal consistency ---------------------------------------------


def test_predictions_reproduce_published_cdnow_values() -> None:
    # The worked example of Hardie's BG/NBD spreadsheet for the paper (CDNOW customer 1: x=2, t_x=30.43, T=38.86):
    # 1.226 purchases expected in the next 39 weeks.
    assert float(bgnbd.expected_purchases(CDNOW, 2, 30.43, 38.86, 39)) == pytest.approx(1.226, abs=1e-3)
    # Unconditional E[X(t)] (x = t_x = T = 0 is the prior) from Hardie's BG/NBD spreadsheet, and
    # P(X(39) = 0) = (alpha / (alpha + 39)) ** r = 0.5737864 as in R's BTYD (bgnbd.pmf). The spreadsheet used the
    # unrounded estimates: with the published 3-decimal ones the values move by up to 0.16%, hence rtol 0.25%.
    weeks = np.array([0.1429, 1.0, 3.0, 31.8571, 32.0, 78.0])
    published = [0.0078, 0.0532, 0.1506, 1.0405, 1.0437, 1.8576]
    zero = np.zeros_like(weeks)
    prior = bgnbd.expected_purchases(CDNOW, zero, zero, zero, weeks)
    np.testing.assert_allclose(prior, published, rtol=2.5e-3, atol=1e-4)
    assert float(bgnbd.probability_no_purchase(CDNOW, 0, 0, 0, 39)) == pytest.approx(0.5737864, abs=1e-7)


def test_probability_no_purchase_is_a_survival_curve_in_the_horizon() -> None:
    rng = np.random.default_rng(3)
    T = rng.uniform(27.0, 39.0, 500)
    x, t_x = bgnbd.simulate(CDNOW, T, rng)
    horizons = np.array([0.0, 1.0, 4.0, 13.0, 39.0, 520.0])

    curves = np.stack([bgnbd.probability_no_purchase(CDNOW, x, t_x, T, h) for h in horizons])

    assert np.all((curves >= 0) & (curves <= 1))
    np.testing.assert_array_equal(curves[0], 1.0)
    assert np.all(np.diff(curves, axis=0) <= 0)
    assert np.all(np.diff(curves, axis=0)[:, x > 0] < 0)  # strictly, unless P(alive) rounds to 0
    # An endless horizon leaves only the dead: P(no purchase) -> 1 - P(alive), at the rate (1 / horizon) ** (r + x),
    # too slowly to see with CDNOW's r = 0.243, hence DAYS.
    far = bgnbd.probability_no_purchase(DAYS, x, t_x, T, 1e15)
    np.testing.assert_allclose(far, 1 - bgnbd.probability_alive(DAYS, x, t_x, T), atol=1e-8)


def test_probability_alive_follows_recency() -> None:
    np.testing.assert_array_equal(bgnbd.probability_alive(CDNOW, [0, 0, 0], [0, 0, 0], [0.0, 10.0, 1e4]), 1.0)
    t_x = np.linspace(38.0, 0.0, 20)  # the same customer (x=3, T=38.86) with ever older last purchases
    alive = bgnbd.probability_alive(CDNOW, np.full(20, 3.0), t_x, np.full(20, 38.86))
    assert np.all(np.diff(alive) < 0)
    assert 0 < alive[-1] < alive[0] < 1
    no_purchase = bgnbd.probability_no_purchase(CDNOW, np.full(20, 3.0), t_x, np.full(20, 38.86), 13.0)
    assert np.all(np.diff(no_purchase) > 0)


@pytest.mark.parametrize(
    "params",
    [
        CDNOW,
        DAYS,
        bgnbd.BgNbdParams(r=2.0, alpha=10.0, a=1.0, b=2.0),  # a == 1: removable singularity of eq. (10)
        bgnbd.BgNbdParams(r=2.0, alpha=10.0, a=1.00003, b=2.0),
        bgnbd.BgNbdParams(r=0.5, alpha=3.0, a=0.3, b=0.7),  # a + b == 1: another one, for x == 0
        bgnbd.BgNbdParams(r=3.0, alpha=1.0, a=0.2, b=50.0),
        bgnbd.BgNbdParams(r=20.0, alpha=500.0, a=30.0, b=3.0),
    ],
)
def test_expected_purchases_matches_numerical_integration(params: Any) -> None:
    rows = [(0, 0, 0, 10), (0, 0, 30, 5), (2, 30.43, 38.86, 39), (1, 0, 5, 99), (50, 90, 100, 365), (300, 99, 100, 1e3)]
    x, t_x, T, horizon = (np.array(column, dtype=float) for column in zip(*rows, strict=True))
    expected = [expected_by_quadrature(params, *row) for row in rows]
    np.testing.assert_allclose(bgnbd.expected_purchases(params, x, t_x, T, horizon), expected, rtol=1e-6)


# --- 4. calibration against simulated futures --------------------------------------------------------------------

CALIBRATION = {"cdnow-weeks": (CDNOW, (27.0, 39.0), 39.0), "days": (DAYS, (100.0, 400.0), 90.0)}


@pytest.mark.parametrize("case", CALIBRATION)
def test_probability_no_purchase_is_calibrated(case: str) -> None:
    params, (low, high), horizon = CALIBRATION[case]
    rng = np.random.default_rng(42)
    T = rng.uniform(low, high, 50_000)
    x, t_x, future = simulate_with_future(params, T, horizon, rng)

    predicted = bgnbd.probability_no_purchase(params, x, t_x, T, horizon)
    observed = future == 0
    # Binomial standard error of the overall share is ~0.2 points, of a decile's ~0.7 points.
    assert abs(predicted.mean() - observed.mean()) < 0.015
    deciles = np.array_split(np.argsort(predicted, kind="stable"), 10)
    gaps = [abs(predicted[rows].mean() - observed[rows].mean()) for rows in deciles]
    assert max(gaps) < 0.03, gaps
    # The score separates: the top decile churns far more often than the bottom one.
    assert observed[deciles[-1]].mean() - observed[deciles[0]].mean() > 0.3


@pytest.mark.parametrize("case", CALIBRATION)
def test_expected_purchases_is_calibrated(case: str) -> None:
    params, (low, high), horizon = CALIBRATION[case]
    rng = np.random.default_rng(43)
    T = rng.uniform(low, high, 50_000)
    x, t_x, future = simulate_with_future(params, T, horizon, rng)

    predicted = bgnbd.expected_purchases(params, x, t_x, T, horizon)
    assert predicted.mean() == pytest.approx(future.mean(), rel=0.03)
    for rows in np.array_split(np.argsort(predicted, kind="stable"), 5):
        assert predicted[rows].mean() == pytest.approx(future[rows].mean(), rel=0.08, abs=0.01)


def test_simulate_matches_the_model_and_the_independent_simulation() -> None:
    rng = np.random.default_rng(5)
    T = rng.uniform(100.0, 400.0, 50_000)
    x, t_x = bgnbd.simulate(DAYS, T, rng)
    x_other, t_x_other, _ = simulate_with_future(DAYS, T, 1.0, rng)

    assert np.all(x == np.round(x))
    assert np.all(x >= 0)
    assert np.all((t_x >= 0) & (t_x <= T))
    assert np.all(t_x[x == 0] == 0)
    assert np.all(t_x[x > 0] > 0)
    # P(X(T) = 0) = (alpha / (alpha + T)) ** r and the prior E[X(T)], averaged over the customers' T.
    zero = np.zeros_like(T)
    assert np.mean(x == 0) == pytest.approx(np.mean(bgnbd.probability_no_purchase(DAYS, zero, zero, zero, T)), abs=0.01)
    assert x.mean() == pytest.approx(bgnbd.expected_purchases(DAYS, zero, zero, zero, T).mean(), rel=0.03)
    assert x.mean() == pytest.approx(x_other.mean(), rel=0.04)
    assert np.mean(t_x / T) == pytest.approx(np.mean(t_x_other / T), abs=0.01)


# --- 5. validation -----------------------------------------------------------------------------------------------

GOOD = {"x": [0.0, 2.0, 1.0], "t_x": [0.0, 30.0, 0.0], "T": [10.0, 38.0, 5.0]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": [-1.0, 2.0, 1.0]}, r"x \(repeat purchases\) must be >= 0: 1 customer\(s\), the first at index 0"),
        ({"x": [0.0, 2.5, 1.0]}, r"x \(repeat purchases\) must be a whole number"),
        ({"t_x": [0.0, 40.0, 0.0]}, r"t_x must not exceed T .* index 1 \(t_x=40, T=38\)"),
        ({"t_x": [1.0, 30.0, 0.0]}, r"t_x must be 0 when x == 0"),
        ({"t_x": [0.0, -1.0, 0.0]}, r"t_x \(time of the last repeat purchase\) must be >= 0"),
        ({"T": [-1.0, 38.0, 5.0]}, r"T \(time observed since the first purchase\) must be >= 0"),
        ({"T": [10.0, 38.0]}, r"x, t_x and T must have the same shape .* got \(3,\), \(3,\) and \(2,\)"),
        ({"x": [0.0, np.nan, 1.0]}, r"x must be finite"),
        ({"t_x": ["a", "b", "c"]}, r"t_x must be numeric"),
    ],
)
def test_bad_input_is_rejected_by_every_function(change: dict[str, list[object]], message: str) -> None:
    data = {**GOOD, **change}
    calls = [
        lambda: bgnbd.log_likelihood(CDNOW, data["x"], data["t_x"], data["T"]),
        lambda: bgnbd.fit(data["x"], data["t_x"], data["T"]),
        lambda: bgnbd.probability_alive(CDNOW, data["x"], data["t_x"], data["T"]),
        lambda: bgnbd.probability_no_purchase(CDNOW, data["x"], data["t_x"], data["T"], 30.0),
        lambda: bgnbd.expected_purchases(CDNOW, data["x"], data["t_x"], data["T"], 30.0),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=message):
            call()


def test_repeat_purchase_at_time_zero_is_accepted() -> None:
    # Same-day repeat purchases once time is rounded to days: x > 0 with t_x == 0 has a finite likelihood.
    assert np.isfinite(bgnbd.log_likelihood(DAYS, [2.0], [0.0], [30.0])).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: bgnbd.BgNbdParams(r=-0.2, alpha=1.0, a=1.0, b=1.0), "parameter r must be a finite number > 0"),
        (lambda: bgnbd.BgNbdParams(r=0.2, alpha=math.inf, a=1.0, b=1.0), "parameter alpha must be a finite"),
        (lambda: bgnbd.probability_no_purchase(CDNOW, GOOD["x"], GOOD["t_x"], GOOD["T"], -1.0), "horizon must be >= 0"),
        (lambda: bgnbd.expected_purchases(CDNOW, GOOD["x"], GOOD["t_x"], GOOD["T"], [1.0, 2.0]), "does not broadcast"),
        (lambda: bgnbd.fit(GOOD["x"], GOOD["t_x"], GOOD["T"], weights=[1.0, 1.0]), "one value per customer"),
        (lambda: bgnbd.fit(GOOD["x"], GOOD["t_x"], GOOD["T"], weights=[1.0, -1.0, 1.0]), "weights must be >= 0"),
        (lambda: bgnbd.fit([0.0, 0.0], [0.0, 0.0], [5.0, 9.0]), r"no customer has a repeat purchase"),
        (lambda: bgnbd.fit([], [], []), "zero customers"),
        (lambda: bgnbd.simulate(CDNOW, [1.0, -2.0], np.random.default_rng(0)), r"T .* must be >= 0"),
    ],
)
def test_bad_parameters_and_options_are_rejected(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
