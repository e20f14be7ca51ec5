"""Expected demand per (day, store, SKU): the product of every effect the world has.

lambda = volume x popularity x store size x assortment x season(channel, category, day) x regional holiday
         x lifecycle x (price paid / base price) ^ elasticity x promotion display uplift x post-promotion dip
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from shelfwise.world.arrays import BoolArray, FloatArray
from shelfwise.world.calendar import EVENTS, STORE, Calendar, HolidayEffects, weekly_profile, yearly_profile
from shelfwise.world.catalog import CATEGORIES, Products, Stores, assortment, lifecycle
from shelfwise.world.pricing import PricePlan, promo_chunk

#: Mean order lines beyond the first, per channel (online baskets are bigger).
EXTRA_LINES = (0.9, 1.3)


@dataclass(frozen=True)
class DemandModel:
    stores: Stores
    products: Products
    prices: PricePlan
    base: FloatArray  # (sku,) units a day at a size-1 store at base price on an ordinary day
    assort: FloatArray  # (store, sku)
    lifecycle: FloatArray  # (day, sku)
    season: FloatArray  # (day, channel, category): weekly x yearly x national holidays x opening hours
    regional: FloatArray  # (day, store): regional holidays x store open
    elasticity: FloatArray  # (sku,)
    extra_units: FloatArray  # (sku,) mean units per order line beyond the first

    @property
    def n_days(self) -> int:
        return int(self.season.shape[0])


@dataclass(frozen=True)
class DemandChunk:
    """Demand of the days [start, stop) and the prices and promotions behind it."""

    start: int
    expected: FloatArray  # (day, store, sku) expected units
    price: FloatArray  # (day, store, sku) price paid
    promo: BoolArray  # (day, store, sku)
    carried: BoolArray  # (day, store, sku): on sale, in the store's range, store open

    def line_rate(self, extra_units: FloatArray) -> FloatArray:
        """Expected order lines per cell (units / mean units per line)."""
        rate: FloatArray = self.expected / (1.0 + extra_units)
        return rate


def seasonality(cal: Calendar, effects: HolidayEffects) -> FloatArray:
    """(day, channel, category) multiplier: weekly shape x yearly cycle x national holidays x opening hours."""
    weekday, doy = cal.weekday, cal.day_of_year
    out = np.empty((cal.n_days, 2, len(CATEGORIES)))
    for c, spec in enumerate(CATEGORIES):
        yearly = yearly_profile(doy, spec.yearly_amplitude, spec.yearly_peak_day)
        sensitivity = np.array([getattr(spec, event) for event in EVENTS])
        holidays = np.exp(np.einsum("e,ecd->cd", sensitivity, effects.log_curves))
        for channel in range(2):
            weekly = weekly_profile(channel, spec.weekly_strength)[weekday]
            out[:, channel, c] = weekly * yearly * holidays[channel] * effects.closure[channel]
    return out


def regional_factor(cal: Calendar, stores: Stores, effects: HolidayEffects) -> FloatArray:
    """(day, store): regional holiday lift on physical stores of the region, 0 before a store opens."""
    days = np.arange(cal.n_days)[:, None]
    lift = np.ones((cal.n_days, stores.n))
    physical = stores.channel == STORE
    lift[:, physical] = effects.regional[stores.region[physical]].T
    opened: BoolArray = days >= stores.open_day[None, :]
    return np.where(opened, lift, 0.0)


def build_model(
    cal: Calendar, stores: Stores, products: Products, prices: PricePlan, effects: HolidayEffects
) -> DemandModel:
    """The demand model at unit volume (see `with_volume`)."""
    cats = [CATEGORIES[c] for c in products.category]
    return DemandModel(
        stores=stores,
        products=products,
        prices=prices,
        base=products.popularity.copy(),
        assort=assortment(stores, products),
        lifecycle=lifecycle(products, cal.n_days),
        season=seasonality(cal, effects),
        regional=regional_factor(cal, stores, effects),
        elasticity=np.array([c.elasticity for c in cats]),
        extra_units=np.array([c.extra_units for c in cats]),
    )


def chunk(model: DemandModel, start: int, stop: int) -> DemandChunk:
    """Expected demand, prices and promotions for the days [start, stop) (clipped to the history)."""
    stop = min(stop, model.n_days)
    stores, products = model.stores, model.products
    promo = promo_chunk(model.prices.promotions, start, stop, stores.n, products.n)
    season = model.season[start:stop][:, stores.channel][:, :, products.category]
    scale = model.base[None, :] * stores.size[:, None] * model.assort
    shelf = model.prices.shelf[start:stop][:, None, :]
    price = np.round(shelf * (1.0 - promo.discount), 2)
    price_effect = (price / products.base_price) ** model.elasticity
    life = model.lifecycle[start:stop][:, None, :]
    regional = model.regional[start:stop][:, :, None]
    expected = season * scale[None] * regional * life * price_effect * promo.display * promo.dip
    carried = (life > 0) & (scale[None] > 0) & (regional > 0)
    return DemandChunk(start, expected, price, promo.discount > 0, carried)


def line_totals(model: DemandModel, months: list[tuple[int, int]]) -> FloatArray:
    """(day, store) expected order lines over all SKUs."""
    return np.concatenate([chunk(model, a, b).line_rate(model.extra_units).sum(axis=2) for a, b in months])


def with_volume(model: DemandModel, totals: FloatArray, orders_per_store_day: float) -> tuple[DemandModel, FloatArray]:
    """Scale demand so that a size-1 physical store takes `orders_per_store_day` orders on an average open day.

    `totals` are the model's `line_totals`; returns the scaled model and its scaled totals.
    """
    physical = model.stores.channel == STORE
    opened = model.regional[:, physical] > 0
    per_size = (totals[:, physical] / model.stores.size[physical])[opened]
    factor = orders_per_store_day * (1.0 + EXTRA_LINES[STORE]) / float(per_size.mean())
    return replace(model, base=model.base * factor), totals * factor
