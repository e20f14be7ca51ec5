"""The forecast's inventory policy against the textbook one, replayed on true demand over a held-out window.

Both policies review every `review_period_days` and order up to a level; both know only what was known at the
window's start. The forecast policy's level at a review is the service-level quantile of the forecast's demand over
the review's lead time plus review period, taken path by path from the sample paths; the textbook level is the
seasonal-naive mean plus a normal safety stock z x sigma x sqrt(L + R) (`textbook_order_up_to`). Each starts the
window holding its own first level, as a policy in its steady state would, and loses the sales it cannot serve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.demand.inventory import QUANTILE_METHOD
from shelfwise.demand.inventory_simulation import SimulationResult, simulate_policy, textbook_order_up_to

#: Per unit: a day on the shelf costs a tenth of what a lost sale costs (a typical margin-to-holding ratio).
HOLDING_COST = 0.1
LOST_SALE_PENALTY = 1.0


@dataclass(frozen=True)
class PolicyOutcome:
    policy: str
    service_level: float
    series: int
    cycle_service_level: float
    fill_rate: float
    average_on_hand: float
    lost_sales: float
    total_cost: float


def forecast_levels(paths: np.ndarray, service_level: float, lead_time: int, review: int, reviews: int) -> np.ndarray:
    """Order-up-to level at each review from one series' daily paths (paths, horizon)."""
    cumulative = np.concatenate([np.zeros((paths.shape[0], 1)), np.cumsum(paths, axis=1)], axis=1)
    levels = []
    for k in range(reviews):
        start = k * review
        cover = cumulative[:, start + lead_time + review] - cumulative[:, start]
        levels.append(float(np.quantile(cover, service_level, method=QUANTILE_METHOD)))
    return np.array(levels)


def _summarise(policy: str, service_level: float, results: list[SimulationResult]) -> PolicyOutcome:
    demanded = sum(r.units_demanded for r in results)
    served = sum(r.units_served for r in results)
    return PolicyOutcome(
        policy=policy,
        service_level=service_level,
        series=len(results),
        cycle_service_level=float(np.mean([r.cycle_service_level for r in results])),
        fill_rate=served / demanded if demanded else 1.0,
        average_on_hand=float(sum(r.average_on_hand for r in results)),
        lost_sales=float(sum(r.lost_sales for r in results)),
        total_cost=float(sum(r.total_cost for r in results)),
    )


def compare_policies(
    paths: np.ndarray,
    true_demand: np.ndarray,
    histories: list[np.ndarray],
    service_levels: tuple[float, ...] = (0.90, 0.95, 0.98),
    lead_time: int = 2,
    review: int = 7,
) -> list[PolicyOutcome]:
    """Replay both policies for every series and service level.

    `paths` (series, paths, horizon) were forecast at the window's start; `true_demand` (series, horizon) is what
    happened; `histories` each series' daily sales before the window (at least 28 days). The replay covers the
    reviews whose lead time plus review period fits in the horizon.
    """
    horizon = paths.shape[2]
    reviews = (horizon - lead_time) // review
    days = reviews * review
    if reviews < 1:
        raise ValueError(f"lead time {lead_time} + review period {review} do not fit in {horizon} days")
    outcomes: list[PolicyOutcome] = []
    for alpha in service_levels:
        runs: dict[str, list[SimulationResult]] = {"forecast": [], "textbook": []}
        for i, history in enumerate(histories):
            demand = np.nan_to_num(true_demand[i, :days])
            levels = {
                "forecast": forecast_levels(paths[i], alpha, lead_time, review, reviews),
                "textbook": np.full(reviews, textbook_order_up_to(history, lead_time, review, alpha)),
            }
            for policy, level in levels.items():
                runs[policy].append(
                    simulate_policy(
                        demand,
                        level,
                        review_period_days=review,
                        lead_time_days=lead_time,
                        initial_on_hand=float(level[0]),
                        holding_cost=HOLDING_COST,
                        lost_sale_penalty=LOST_SALE_PENALTY,
                    )
                )
        outcomes.extend(_summarise(policy, alpha, results) for policy, results in runs.items())
    return outcomes
