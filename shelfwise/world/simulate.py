"""The day loop: customers visit, baskets are drawn, shelves are emptied, sessions logged, customers churn.

Everything inside a day is vectorised (over customers, order lines, cells, events); the loop runs over days
because each day's churn and stock depend on the previous days. Output is handed over one month at a time, so
memory stays bounded whatever the scale.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from shelfwise.world import clickstream, customers, demand, inventory, orders
from shelfwise.world.arrays import BoolArray, FloatArray, IntArray
from shelfwise.world.calendar import ONLINE, Calendar
from shelfwise.world.catalog import CATEGORIES, Products, Stores
from shelfwise.world.clock import US_PER_DAY, US_PER_SECOND, seconds_of_day

_RETURN_DELAY_DAYS = 12.0
_MAX_RETURN_DELAY = 60
_LOGGED_IN_BROWSE = 0.45


@dataclass(frozen=True)
class World:
    """Everything fixed before the first day."""

    cal: Calendar
    stores: Stores
    products: Products
    colour: IntArray  # (sku,) colour index of the product image
    model: demand.DemandModel
    line_totals: FloatArray  # (day, store) expected order lines
    customers: customers.Customers
    browse_sessions_per_order: float


@dataclass(frozen=True)
class MonthLines:
    order: IntArray  # order number (1-based, global)
    line_no: IntArray
    ts: IntArray  # microseconds since the epoch
    store: IntArray
    customer: IntArray  # -1 = walk-in
    sku: IntArray
    quantity: IntArray  # negative = return
    unit_price: FloatArray
    promo: BoolArray
    channel: IntArray


@dataclass(frozen=True)
class MonthEvents:
    event: IntArray  # event number (1-based, global)
    kind: IntArray
    session: IntArray  # session number (1-based, global)
    customer: IntArray
    sku: IntArray
    ts: IntArray
    query: IntArray


@dataclass(frozen=True)
class MonthCells:
    """Truth per carried (day, store, SKU) cell."""

    day: IntArray
    store: IntArray
    sku: IntArray
    demand: IntArray
    sales: IntArray
    stockout: BoolArray
    promo: BoolArray
    price: FloatArray


@dataclass(frozen=True)
class Month:
    start: int
    stop: int
    lines: MonthLines
    events: MonthEvents
    cells: MonthCells


@dataclass
class _Returns:
    """Returns waiting for their day: day -> columns (store, customer, sku, quantity, price, promo, channel)."""

    due: dict[int, list[tuple[IntArray, IntArray, IntArray, IntArray, FloatArray, BoolArray, IntArray]]] = field(
        default_factory=dict
    )


@dataclass
class _Counters:
    order: int = 0
    session: int = 0
    event: int = 0


def _concat(parts: Sequence[tuple[np.ndarray, ...]], n_cols: int) -> list[np.ndarray]:
    if not parts:
        return [np.zeros(0, dtype=np.int64) for _ in range(n_cols)]
    return [np.concatenate(cols) for cols in zip(*parts, strict=True)]


class _Simulation:
    def __init__(self, world: World, rng: np.random.Generator) -> None:
        self.w = world
        self.rng = rng
        self.n_stores, self.n_skus = world.stores.n, world.products.n
        self.online_store = int(np.flatnonzero(world.stores.channel == ONLINE)[0])
        self.inventory = inventory.new_inventory(self.n_stores * self.n_skus, rng)
        opened = world.model.regional > 0
        self.reference = np.where(opened, world.line_totals, 0).sum(0) / np.maximum(opened.sum(0), 1)
        self.returns = _Returns()
        self.counters = _Counters()
        self.return_rate = np.array([CATEGORIES[c].return_rate for c in world.products.category])
        self.channel = world.stores.channel

    def month(self, start: int, stop: int) -> Month:
        w = self.w
        part = demand.chunk(w.model, start, stop + 7)
        expected = part.expected
        if expected.shape[0] < stop - start + 7:  # the history ends: the planner repeats the last days
            pad = np.repeat(expected[-1:], stop - start + 7 - expected.shape[0], axis=0)
            expected = np.concatenate([expected, pad])
        ahead = inventory.week_ahead(expected.reshape(expected.shape[0], -1))
        rates = part.line_rate(w.model.extra_units)
        lines, events, cells = [], [], []
        for day in range(start, stop):
            i = day - start
            day_lines, day_events, day_cells = self.day(day, rates[i], part, i, ahead[i])
            lines.append(day_lines)
            events.append(day_events)
            cells.append(day_cells)
        return Month(
            start,
            stop,
            MonthLines(*_concat(lines, 10)),
            MonthEvents(*_concat(events, 7)),
            MonthCells(*_concat(cells, 8)),
        )

    def day(
        self, day: int, rate: FloatArray, part: demand.DemandChunk, i: int, ahead: FloatArray
    ) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
        c = self.w.customers
        basket = self._place_orders(day, rate)
        session_events, line_time = self._time_orders(day, basket, rate)
        # The shelf: fill in time order, censor the rest, reorder.
        carried = part.carried[i].ravel()
        on_shelf = inventory.open_day(self.inventory, day, carried, ahead)
        filled = orders.fill(basket, line_time, on_shelf, self.n_skus)
        inventory.close_day(self.inventory, day, filled.sales, ahead, self.rng)
        selling = carried & (part.expected[i].ravel() > 0)
        stockout = selling & ((on_shelf == 0) | (filled.demand > on_shelf))

        known = basket.customer >= 0
        bought = np.unique(basket.customer[known & (filled.quantity > 0)])
        met = np.unique(basket.customer[known & (filled.quantity < basket.quantity)])
        customers.end_day(c, day, bought, met, self.rng)

        sold = filled.quantity > 0
        price = part.price[i][basket.store, basket.sku]
        promo = part.promo[i][basket.store, basket.sku]
        self._schedule_returns(day, basket, filled.quantity, price, promo, sold)
        day_lines = self._number_lines(day, basket, filled.quantity, line_time, price, promo, sold)
        is_purchase = session_events.kind == clickstream.PURCHASE
        lost = np.zeros(len(is_purchase), dtype=bool)
        lost[is_purchase] = filled.quantity[session_events.line[is_purchase]] == 0
        day_events = self._number_events(day, session_events.keep(~lost))
        cell = np.flatnonzero(carried)
        day_cells = (
            np.full(len(cell), day, dtype=np.int64),
            cell // self.n_skus,
            cell % self.n_skus,
            filled.demand[cell],
            filled.sales[cell],
            stockout[cell],
            part.promo[i].ravel()[cell],
            part.price[i].ravel()[cell],
        )
        return day_lines, day_events, day_cells

    def _place_orders(self, day: int, rate: FloatArray) -> orders.Lines:
        """Customers' visits plus walk-ins up to the expected orders of each store, then their baskets."""
        line_totals = rate.sum(axis=1)
        orders_expected = line_totals / (1.0 + np.take(demand.EXTRA_LINES, self.channel))
        traffic = line_totals / np.maximum(self.reference, 1e-12)
        visits = customers.draw_visits(self.w.customers, day, traffic, orders_expected, self.online_store, self.rng)
        walk_ins = self.rng.poisson(np.maximum(orders_expected - visits.expected, 0.0))
        order_store = np.concatenate([visits.store, np.repeat(np.arange(self.n_stores), walk_ins)])
        order_customer = np.concatenate([visits.customer, np.full(int(walk_ins.sum()), -1, dtype=np.int64)])
        return orders.draw_lines(order_store, order_customer, rate, self.w.model.extra_units, self.channel, self.rng)

    def _time_orders(self, day: int, basket: orders.Lines, rate: FloatArray) -> tuple[clickstream.Events, IntArray]:
        """In-store orders get a time from the store clock, online ones from the session that placed them.

        Returns the day's click events and each line's time (microseconds into the day).
        """
        n_orders = int(basket.order.max()) + 1 if basket.n else 0
        first_line = np.flatnonzero(basket.line_no == 1)
        order_channel = basket.channel[first_line]
        order_customer = basket.customer[first_line]
        order_time = seconds_of_day(order_channel, self.rng) * US_PER_SECOND
        online_orders = np.flatnonzero(order_channel == ONLINE)
        local = np.full(n_orders, -1, dtype=np.int64)
        local[online_orders] = np.arange(len(online_orders))
        online_lines = np.flatnonzero(basket.channel == ONLINE)
        n_browse = int(self.rng.poisson(self.w.browse_sessions_per_order * len(online_orders)))
        online_day = clickstream.OnlineDay(rate[self.online_store], self.w.products.category, self.w.colour)
        events, purchase_time = clickstream.sessions(
            online_day,
            order_customer[online_orders],
            local[basket.order[online_lines]],
            basket.sku[online_lines],
            online_lines,
            self._browsers(day, n_browse),
            n_browse,
            self.rng,
        )
        order_time[online_orders] = purchase_time
        return events, order_time[basket.order]

    def _browsers(self, day: int, n: int) -> IntArray:
        """Who browses without buying: a logged-in online-minded customer, or anonymous (-1)."""
        c = self.w.customers
        candidates = np.flatnonzero(customers.active(c, day) & c.prefers_online)
        who = np.full(n, -1, dtype=np.int64)
        logged_in = self.rng.random(n) < _LOGGED_IN_BROWSE
        if len(candidates):
            who[logged_in] = candidates[self.rng.integers(0, len(candidates), size=int(logged_in.sum()))]
        return who

    def _schedule_returns(
        self, day: int, basket: orders.Lines, filled: IntArray, price: FloatArray, promo: BoolArray, sold: BoolArray
    ) -> None:
        back = sold & (self.rng.random(basket.n) < self.return_rate[basket.sku])
        idx = np.flatnonzero(back)
        delay = np.minimum(1 + self.rng.geometric(1 / _RETURN_DELAY_DAYS, size=len(idx)), _MAX_RETURN_DELAY)
        for d in np.unique(delay):
            pick = idx[delay == d]
            self.returns.due.setdefault(day + int(d), []).append(
                (
                    basket.store[pick],
                    basket.customer[pick],
                    basket.sku[pick],
                    -filled[pick],
                    price[pick],
                    promo[pick],
                    basket.channel[pick],
                )
            )

    def _number_lines(
        self,
        day: int,
        basket: orders.Lines,
        filled: IntArray,
        time: IntArray,
        price: FloatArray,
        promo: BoolArray,
        sold: BoolArray,
    ) -> tuple[np.ndarray, ...]:
        """Kept sale lines plus today's returns, ordered by time, with global order numbers."""
        c = self.w.customers
        store, customer, sku, qty, r_price, r_promo, r_channel = _concat(self.returns.due.pop(day, []), 7)
        # A churned customer no longer comes back, not even to return something.
        keep = (customer < 0) | (c.churn_day[np.maximum(customer, 0)] > day)
        store, customer, sku, qty, r_price, r_promo, r_channel = (
            a[keep] for a in (store, customer, sku, qty, r_price, r_promo, r_channel)
        )
        r_time = seconds_of_day(r_channel.astype(np.int64), self.rng) * US_PER_SECOND
        n_orders = int(basket.order.max()) + 1 if basket.n else 0
        key = np.concatenate([basket.order[sold], n_orders + np.arange(len(store))])
        all_time = np.concatenate([time[sold], r_time])
        line_no = np.concatenate([basket.line_no[sold], np.ones(len(store), dtype=np.int64)])
        order = np.lexsort((line_no, key, all_time))
        key_sorted = key[order]
        new_order = np.r_[True, key_sorted[1:] != key_sorted[:-1]] if len(key_sorted) else np.zeros(0, bool)
        number = self.counters.order + np.cumsum(new_order)
        self.counters.order += int(new_order.sum())
        position = np.arange(len(order))
        renumbered = position - np.maximum.accumulate(np.where(new_order, position, 0)) + 1
        day_us = self._day_us(day)
        cols = (
            np.concatenate([basket.store[sold], store]),
            np.concatenate([basket.customer[sold], customer]),
            np.concatenate([basket.sku[sold], sku]),
            np.concatenate([filled[sold], qty]),
            np.concatenate([price[sold], r_price]),
            np.concatenate([promo[sold], r_promo.astype(bool)]),
            np.concatenate([basket.channel[sold], r_channel]),
        )
        store_s, customer_s, sku_s, qty_s, price_s, promo_s, channel_s = (col[order] for col in cols)
        return (
            number,
            renumbered,
            day_us + all_time[order],
            store_s,
            customer_s,
            sku_s,
            qty_s,
            price_s,
            promo_s,
            channel_s,
        )

    def _number_events(self, day: int, ev: clickstream.Events) -> tuple[np.ndarray, ...]:
        session_rank = np.argsort(np.argsort(ev.session_start, kind="stable"), kind="stable")
        session_number = self.counters.session + 1 + session_rank[ev.session]
        self.counters.session += len(ev.session_start)
        order = np.lexsort((ev.position, session_number, ev.time))
        number = self.counters.event + 1 + np.arange(len(order))
        self.counters.event += len(order)
        return (
            number,
            ev.kind[order],
            session_number[order],
            ev.customer[order],
            ev.sku[order],
            self._day_us(day) + ev.time[order],
            ev.query[order],
        )

    def _day_us(self, day: int) -> int:
        epoch_day = int(np.datetime64(self.w.cal.start, "D").astype(np.int64)) + day
        return epoch_day * US_PER_DAY


def simulate(
    world: World,
    rng: np.random.Generator,
    on_month: Callable[[Month], None],
    progress: Callable[[float], None] | None = None,
) -> None:
    """Run every day of the history, handing each finished month to `on_month`; mutates `world.customers`."""
    sim = _Simulation(world, rng)
    months = world.cal.month_chunks()
    for start, stop in months:
        on_month(sim.month(start, stop))
        if progress is not None:
            progress(stop / world.cal.n_days)
