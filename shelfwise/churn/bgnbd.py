"""The BG/NBD model of Fader, Hardie and Lee (2005), "Counting Your Customers the Easy Way": the churn baseline.

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(shape r, rate alpha); after each repeat
purchase they drop out for good with probability p ~ Beta(a, b). Churn is scored as the probability of no purchase
in the label horizon, which is what the churn label records, rather than 1 - P(alive): a live customer with a low
purchase rate often buys nothing in the horizon either.

Data conventions, per customer: `x` = number of repeat purchases (purchases after the first), `t_x` = time of the
last repeat purchase measured from the first purchase, `T` = time from the first purchase to the end of observation.
Any time unit works if it is used consistently (the churn pipeline passes days); `alpha` is in that unit.
Validation (ValueError): finite values, `x` a whole number >= 0, 0 <= t_x <= T, and t_x == 0 when x == 0.
`x > 0` with `t_x == 0` is accepted: it is what same-day repeat purchases look like once time is rounded to days,
and the likelihood is finite there.

Numpy, and scipy for fitting and expected purchases only (imported there): the API derives the model's BG/NBD
features with `probability_alive` and `probability_no_purchase` without loading scipy on a cold start. The module is
staged with the churn pipeline's steps (`shelfwise.pipelines.code`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _expit(z: FloatArray) -> FloatArray:
    """The logistic function without scipy (stable for large |z|)."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


# Log-parameter box for the optimiser (parameters between about 2e-9 and 5e8, in time rescaled to mean T = 1):
# keeps exp() finite; an estimate on the box means the data do not identify that parameter.
_LOG_BOUND = 20.0
# A restart of the optimiser that raises the total log-likelihood by less than this has found nothing more.
_STALL_GAIN = 1e-6
_RESTARTS = 5
# Expected purchases has removable singularities at a == 1 and (for x == 0) a + b == 1; within this distance the
# value is extrapolated linearly from two regular points, an O(h**2) error.
_SINGULAR_STEP = 1e-4


@dataclass(frozen=True)
class BgNbdParams:
    """Purchase rate ~ Gamma(shape r, rate alpha), alpha in the data's time unit; dropout p ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float

    def __post_init__(self) -> None:
        for name in ("r", "alpha", "a", "b"):
            value = getattr(self, name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and number > 0):
                raise ValueError(f"BG/NBD parameter {name} must be a finite number > 0, got {value!r}")


def _as_float_array(value: npt.ArrayLike, name: str) -> FloatArray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from error
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite, found {int(np.sum(~np.isfinite(array)))} NaN or infinite value(s)")
    return array


def _reject(bad: npt.NDArray[np.bool_], message: str, *columns: tuple[str, FloatArray]) -> None:
    """Name the rule, how many customers break it and the first one, so that bad upstream data can be found."""
    if not np.any(bad):
        return
    first = int(np.flatnonzero(bad)[0])
    example = ", ".join(f"{name}={column.flat[first]:g}" for name, column in columns)
    raise ValueError(f"{message}: {int(np.sum(bad))} customer(s), the first at index {first} ({example})")


def _validate(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Check the data conventions once, here, so that every public function rejects the same inputs."""
    x_arr = _as_float_array(x, "x")
    t_x_arr = _as_float_array(t_x, "t_x")
    age = _as_float_array(T, "T")
    if not x_arr.shape == t_x_arr.shape == age.shape:
        raise ValueError(
            f"x, t_x and T must have the same shape (one value per customer), got {x_arr.shape}, {t_x_arr.shape} "
            f"and {age.shape}"
        )
    _reject(x_arr < 0, "x (repeat purchases) must be >= 0", ("x", x_arr))
    _reject(x_arr != np.round(x_arr), "x (repeat purchases) must be a whole number", ("x", x_arr))
    _reject(t_x_arr < 0, "t_x (time of the last repeat purchase) must be >= 0", ("t_x", t_x_arr))
    _reject(age < 0, "T (time observed since the first purchase) must be >= 0", ("T", age))
    _reject(
        t_x_arr > age,
        "t_x must not exceed T (the last purchase cannot come after the end of observation)",
        ("t_x", t_x_arr),
        ("T", age),
    )
    _reject(
        (x_arr == 0) & (t_x_arr != 0),
        "t_x must be 0 when x == 0 (no repeat purchase, so no time of the last one)",
        ("x", x_arr),
        ("t_x", t_x_arr),
    )
    return x_arr, t_x_arr, age


def _validate_horizon(horizon: npt.ArrayLike, shape: tuple[int, ...]) -> FloatArray:
    t = _as_float_array(horizon, "horizon")
    try:
        np.broadcast_shapes(t.shape, shape)
    except ValueError as error:
        raise ValueError(
            f"horizon of shape {t.shape} does not broadcast against x, t_x and T of shape {shape}"
        ) from error
    _reject(t < 0, "horizon must be >= 0", ("horizon", t))
    return t


def _log_odds_dead(params: BgNbdParams, x: FloatArray, t_x: FloatArray, age: FloatArray) -> FloatArray:
    """log P(dropped out at the last purchase) - log P(alive); -inf without repeat purchases (no chance to drop)."""
    repeat = x > 0
    log_odds = (
        math.log(params.a)
        - np.log(params.b + np.where(repeat, x, 1.0) - 1.0)
        + (params.r + x) * (np.log(params.alpha + age) - np.log(params.alpha + t_x))
    )
    return np.where(repeat, log_odds, -np.inf)


def log_likelihood(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
) -> FloatArray:
    """Per-customer log-likelihood, eq. (6) of the paper, in log space so that large x or T cannot overflow."""
    from scipy.special import betaln, gammaln

    x_arr, t_x_arr, age = _validate(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x_arr > 0
    x_safe = np.where(repeat, x_arr, 1.0)
    common = gammaln(r + x_arr) - gammaln(r) + r * math.log(alpha) - betaln(a, b)
    still_alive = betaln(a, b + x_arr) - (r + x_arr) * np.log(alpha + age)
    dropped = np.where(repeat, betaln(a + 1.0, b + x_safe - 1.0) - (r + x_arr) * np.log(alpha + t_x_arr), -np.inf)
    return np.asarray(common + np.logaddexp(still_alive, dropped), dtype=np.float64)


def _objective(
    x: FloatArray, t_x: FloatArray, age: FloatArray, weights: FloatArray
) -> Callable[[FloatArray], tuple[float, FloatArray]]:
    """Weighted mean negative log-likelihood and its analytic gradient in log-parameters.

    Everything that depends on x alone is evaluated once per distinct x (a few hundred values at most), so one
    evaluation costs a handful of vectorised passes over the customers.
    """
    from scipy.special import betaln, digamma, expit, gammaln

    x_values, index = np.unique(x, return_inverse=True)
    index = index.reshape(-1)
    repeat = x > 0
    x_safe_values = np.maximum(x_values, 1.0)
    total_weight = float(np.sum(weights))

    def negative_mean(theta: FloatArray) -> tuple[float, FloatArray]:
        r, alpha, a, b = np.exp(theta)
        s_values = r + x_values
        s = s_values[index]
        log_alpha_age = np.log(alpha + age)
        log_alpha_t_x = np.log(alpha + t_x)
        common = (gammaln(s_values) - gammaln(r))[index] + r * math.log(alpha) - betaln(a, b)
        still_alive = betaln(a, b + x_values)[index] - s * log_alpha_age
        dropped = np.where(repeat, betaln(a + 1.0, b + x_safe_values - 1.0)[index] - s * log_alpha_t_x, -np.inf)
        total = np.logaddexp(still_alive, dropped)
        # Posterior weights of the two explanations of the data (alive at T, dropped out at t_x).
        w_alive = expit(still_alive - dropped)
        w_dropped = 1.0 - w_alive

        psi_abx = digamma(a + b + x_values)
        d_r = (
            (digamma(s_values) - digamma(r))[index]
            + math.log(alpha)
            - w_alive * log_alpha_age
            - w_dropped * log_alpha_t_x
        )
        d_alpha = r / alpha - s * (w_alive / (alpha + age) + w_dropped / (alpha + t_x))
        d_a = (
            digamma(a + b)
            - digamma(a)
            + w_alive * (digamma(a) - psi_abx)[index]
            + w_dropped * (digamma(a + 1.0) - psi_abx)[index]
        )
        d_b = (
            digamma(a + b)
            - digamma(b)
            + w_alive * (digamma(b + x_values) - psi_abx)[index]
            + w_dropped * (digamma(b + x_safe_values - 1.0) - psi_abx)[index]
        )
        value = -float(np.sum(weights * (common + total))) / total_weight
        gradient = (
            np.array([np.sum(weights * d) for d in (d_r, d_alpha, d_a, d_b)], dtype=np.float64)
            * -np.array([r, alpha, a, b])
            / total_weight
        )
        return value, gradient

    return negative_mean


def _maximise(objective: Callable[[FloatArray], tuple[float, FloatArray]], total_weight: float) -> FloatArray:
    """L-BFGS-B from r = alpha = a = b = 1 (time rescaled), restarted from where it stopped until it succeeds.

    The line search stalls (ABNORMAL) when rounding noise hides any further gain, typically on the a, b -> infinity
    ridge (no heterogeneity in dropout); a restart with fresh curvature memory that raises the total log-likelihood
    by less than _STALL_GAIN confirms the optimum.
    """
    from scipy.optimize import minimize

    theta = np.zeros(4)
    best = math.inf
    message = ""
    for _ in range(_RESTARTS):
        result = minimize(
            objective,
            theta,
            jac=True,
            method="L-BFGS-B",
            bounds=[(-_LOG_BOUND, _LOG_BOUND)] * 4,
            options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-8},
        )
        message = str(result.message)
        if not (np.all(np.isfinite(result.x)) and math.isfinite(result.fun)):
            break
        stalled = (best - float(result.fun)) * total_weight < _STALL_GAIN
        if result.fun <= best:
            theta, best = np.asarray(result.x, dtype=np.float64), float(result.fun)
        if result.success or stalled:
            return theta
    raise RuntimeError(f"BG/NBD fit did not converge: {message}")


def fit(
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    *,
    weights: npt.ArrayLike | None = None,
) -> BgNbdParams:
    """Maximum-likelihood estimate (L-BFGS-B on log-parameters with the analytic gradient).

    Times are divided by the (weighted) mean of T while fitting so that alpha is of order one whatever the time
    unit, and alpha is scaled back; the other parameters do not depend on the unit. `weights` multiply each
    customer's log-likelihood (e.g. counts of identical (x, t_x, T) rows). Raises ValueError when the data cannot
    identify the model (no repeat purchase at all, or no observation time) and RuntimeError when the optimiser fails.
    """
    x_arr, t_x_arr, age = (array.reshape(-1) for array in _validate(x, t_x, T))
    if x_arr.size == 0:
        raise ValueError("cannot fit the BG/NBD model to zero customers")
    if weights is None:
        w = np.ones_like(x_arr)
    else:
        w = _as_float_array(weights, "weights").reshape(-1)
        if w.size != x_arr.size:
            raise ValueError(f"weights must have one value per customer: got {w.size} for {x_arr.size} customers")
        _reject(w < 0, "weights must be >= 0", ("weight", w))
        if not np.sum(w) > 0:
            raise ValueError("weights must not all be 0")
    used = w > 0
    if not np.any(x_arr[used] > 0):
        raise ValueError("no customer has a repeat purchase (x > 0): the BG/NBD parameters are not identified")
    scale = float(np.sum(w * age) / np.sum(w))
    if not scale > 0:
        raise ValueError("every customer has T == 0: there is no observation time to fit the model to")

    objective = _objective(x_arr[used], t_x_arr[used] / scale, age[used] / scale, w[used])
    theta = _maximise(objective, float(np.sum(w)))
    on_bound = [name for name, value in zip(("r", "alpha", "a", "b"), theta, strict=True) if abs(value) >= _LOG_BOUND]
    if on_bound:
        warnings.warn(
            f"BG/NBD estimate of {', '.join(on_bound)} is on the optimiser's bound: the data do not identify it",
            RuntimeWarning,
            stacklevel=2,
        )
    r, alpha_scaled, a, b = (float(value) for value in np.exp(theta))
    return BgNbdParams(r=r, alpha=alpha_scaled * scale, a=a, b=b)


def probability_alive(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
) -> FloatArray:
    """P(still alive at T | x, t_x, T); exactly 1 without repeat purchases, since dropout follows a purchase."""
    x_arr, t_x_arr, age = _validate(x, t_x, T)
    return np.asarray(_expit(-_log_odds_dead(params, x_arr, t_x_arr, age)), dtype=np.float64)


def probability_no_purchase(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    horizon: npt.ArrayLike,
) -> FloatArray:
    """P(no purchase in (T, T + horizon] | x, t_x, T): the churn score, comparable with a no-purchase label.

    A customer drops out only right after a purchase, so one alive at T buys again after an exponential time;
    averaging exp(-lambda * horizon) over lambda's posterior given alive, Gamma(r + x, alpha + T), gives
    ((alpha + T) / (alpha + T + horizon)) ** (r + x). Dead customers never buy.
    """
    x_arr, t_x_arr, age = _validate(x, t_x, T)
    t = _validate_horizon(horizon, x_arr.shape)
    alive = _expit(-_log_odds_dead(params, x_arr, t_x_arr, age))
    buys_if_alive = -np.expm1(-(params.r + x_arr) * np.log1p(t / (params.alpha + age)))
    return np.asarray(np.clip(1.0 - alive * buys_if_alive, 0.0, 1.0), dtype=np.float64)


def _expected_if_alive(
    r: float, alpha: float, a: float, b: float, x: FloatArray, age: FloatArray, t: FloatArray
) -> FloatArray:
    """E[purchases in (T, T + t] | alive at T], the fraction in eq. (10) without P(alive).

    The paper's 2F1(r + x, b + x; a + b + x - 1; z) times (1 - z) ** (r + x) is rewritten with Euler's
    transformation as (1 - z) ** (a - 1) * 2F1(a + b - 1 - r, a - 1; a + b + x - 1; z), so that a 2F1 that grows
    like (1 - z) ** -(r + x) for heavy buyers and long horizons is not multiplied by a vanishing power.
    """
    from scipy.special import hyp2f1

    c = a + b + x - 1.0
    log_1mz = -np.log1p(t / (alpha + age))  # log(1 - z), z = t / (alpha + T + t), so z < 1 for any finite t
    z = -np.expm1(log_1mz)
    log_factor = (a - 1.0) * log_1mz
    f = hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    g = -np.expm1(log_factor) - np.exp(log_factor) * (f - 1.0)
    return np.asarray(c / (a - 1.0) * g, dtype=np.float64)


def _extrapolated(evaluate: Callable[[float], FloatArray], value: float, singular: float) -> FloatArray | None:
    """Linear extrapolation to `value` from singular + h and singular + 2h when `value` is within h of `singular`."""
    if abs(value - singular) >= _SINGULAR_STEP:
        return None
    near, far = singular + _SINGULAR_STEP, singular + 2.0 * _SINGULAR_STEP
    at_near, at_far = evaluate(near), evaluate(far)
    return at_near + (value - near) / (far - near) * (at_far - at_near)


def expected_purchases(
    params: BgNbdParams,
    x: npt.ArrayLike,
    t_x: npt.ArrayLike,
    T: npt.ArrayLike,  # noqa: N803
    horizon: npt.ArrayLike,
) -> FloatArray:
    """E[X(T, T + horizon) | x, t_x, T], eq. (10) of the paper; with x = t_x = T = 0 it is the prior E[X(horizon)]."""
    from scipy.special import expit

    x_arr, t_x_arr, age = _validate(x, t_x, T)
    t = _validate_horizon(horizon, x_arr.shape)
    x_b, age_b, t_b = np.broadcast_arrays(x_arr, age, t)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b

    if_alive = _extrapolated(lambda a_: _expected_if_alive(r, alpha, a_, b, x_b, age_b, t_b), a, 1.0)
    if if_alive is None:
        # For x == 0 the 2F1 has a pole at a + b == 1, cancelled by the factor (a + b - 1) in front.
        pole = (x_b == 0) & (abs(a + b - 1.0) < _SINGULAR_STEP)
        regular = ~pole
        if_alive = np.empty(x_b.shape, dtype=np.float64)
        if_alive[regular] = _expected_if_alive(r, alpha, a, b, x_b[regular], age_b[regular], t_b[regular])
        if np.any(pole):
            near_pole = _extrapolated(
                lambda b_: _expected_if_alive(r, alpha, a, b_, x_b[pole], age_b[pole], t_b[pole]), b, 1.0 - a
            )
            if near_pole is not None:  # always: pole is non-empty only within _SINGULAR_STEP of a + b == 1
                if_alive[pole] = near_pole
    alive = expit(-_log_odds_dead(params, x_arr, t_x_arr, age))
    return np.asarray(alive * if_alive, dtype=np.float64)


def simulate(
    params: BgNbdParams,
    T: npt.ArrayLike,  # noqa: N803
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Draw (x, t_x) for customers whose first purchase was T before the end of observation.

    Exact and vectorised: the number of purchases the customer would make in (0, T] without dropping out is
    Poisson(lambda * T), dropout comes at the N-th repeat purchase with N ~ Geometric(p) on {1, 2, ...}, so
    x = min(N, Poisson count); given the count k, the x-th purchase time is T times the x-th of k uniform order
    statistics, T * Beta(x, k - x + 1).
    """
    age = _as_float_array(T, "T")
    _reject(age < 0, "T (time observed since the first purchase) must be >= 0", ("T", age))
    rate = rng.gamma(shape=params.r, scale=1.0 / params.alpha, size=age.shape)
    p = rng.beta(params.a, params.b, size=age.shape)
    count = rng.poisson(rate * age).astype(np.float64)
    with np.errstate(divide="ignore"):
        # Inverse-CDF geometric in floating point: p can underflow to 0 (never drops out, N = inf).
        dropout_at = np.maximum(1.0, np.ceil(rng.standard_exponential(size=age.shape) / -np.log1p(-p)))
    x = np.minimum(count, dropout_at)
    repeat = x > 0
    last = rng.beta(np.where(repeat, x, 1.0), np.where(repeat, count - x + 1.0, 1.0))
    t_x = np.where(repeat, age * last, 0.0)
    return np.asarray(x, dtype=np.float64), np.asarray(t_x, dtype=np.float64)
