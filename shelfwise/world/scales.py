"""The sizes of world the generator can make: `small` for tests, `demo` for the local run (`make demo` stays within
minutes on 2 cores), `default` and `large` for benchmarks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class ScaleSpec:
    """How big a world is; everything else about it follows from the seed."""

    name: str
    n_skus: int
    n_regions: int
    n_physical_stores: int
    n_customers: int
    #: mean orders a day at a physical store of size 1 on an ordinary day (the volume knob)
    orders_per_store_day: float
    #: the online store's volume relative to a size-1 physical store
    online_size: float
    start: dt.date = dt.date(2023, 1, 1)
    end: dt.date = dt.date(2024, 12, 31)
    #: share of orders placed by known customers once the customer base has grown (the rest are walk-ins)
    customer_order_share: float = 0.6
    #: browse-only sessions per online order
    browse_sessions_per_order: float = 1.5

    @property
    def n_days(self) -> int:
        return (self.end - self.start).days + 1


_SPECS = (
    ScaleSpec("small", n_skus=90, n_regions=3, n_physical_stores=3, n_customers=2_000,
              orders_per_store_day=80.0, online_size=1.5),
    ScaleSpec("demo", n_skus=200, n_regions=3, n_physical_stores=6, n_customers=12_000,
              orders_per_store_day=70.0, online_size=3.0),
    ScaleSpec("default", n_skus=500, n_regions=5, n_physical_stores=19, n_customers=50_000,
              orders_per_store_day=70.0, online_size=5.0),
    ScaleSpec("large", n_skus=1_500, n_regions=5, n_physical_stores=49, n_customers=400_000,
              orders_per_store_day=130.0, online_size=12.0),
)  # fmt: skip

#: The valid scale names, smallest first.
SCALES: tuple[str, ...] = tuple(spec.name for spec in _SPECS)


def scale_spec(scale: str) -> ScaleSpec:
    """The spec of a named scale; a `ValueError` listing the valid names for anything else."""
    for spec in _SPECS:
        if spec.name == scale:
            return spec
    raise ValueError(f"unknown world scale {scale!r}; valid scales: {', '.join(SCALES)}")
