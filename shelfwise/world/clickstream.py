"""Online sessions consistent with the orders: search, views, add to cart, then purchase of the same SKUs.

Every online order comes from a session (its order time is the session's purchase time); browse-only sessions
view SKUs in proportion to online demand and sometimes abandon a cart. Searches carry the query text (an index
into `Vocabulary`) and no SKU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.world.arrays import BoolArray, FloatArray, IntArray
from shelfwise.world.catalog import CATEGORIES
from shelfwise.world.clock import US_PER_DAY, US_PER_SECOND, seconds_of_day

EVENT_TYPES = ("view", "add_to_cart", "purchase", "search")
VIEW, CART, PURCHASE, SEARCH = range(4)
COLOURS = ("red", "orange", "yellow", "green", "teal", "blue", "purple", "pink")
_TERMS = 3
_PURCHASE_POS = 1_000_000
_LATEST_START = 20 * 3600


def vocabulary() -> tuple[str, ...]:
    """Every search query text, indexed by `query_index`."""
    out = []
    for spec in CATEGORIES:
        for term in spec.terms[:_TERMS]:
            out.append(term)
            out.extend(f"{colour} {term}" for colour in COLOURS)
    return tuple(out)


def query_index(category: IntArray, term: IntArray, colour: IntArray) -> IntArray:
    """Index into `vocabulary()`; colour -1 = a query without a colour word."""
    result: IntArray = (category * _TERMS + term) * (len(COLOURS) + 1) + colour + 1
    return result


@dataclass(frozen=True)
class Events:
    """One day's click events (before numbering); times are microseconds into the day."""

    session: IntArray  # day-local session index
    kind: IntArray
    customer: IntArray  # -1 = anonymous
    sku: IntArray  # -1 for searches
    time: IntArray
    query: IntArray  # -1 unless a search
    position: IntArray  # order within the session
    line: IntArray  # the order line a purchase event belongs to, else -1
    session_start: IntArray  # per session

    def keep(self, mask: BoolArray) -> Events:
        return Events(
            self.session[mask],
            self.kind[mask],
            self.customer[mask],
            self.sku[mask],
            self.time[mask],
            self.query[mask],
            self.position[mask],
            self.line[mask],
            self.session_start,
        )


@dataclass(frozen=True)
class OnlineDay:
    """The day's online assortment and demand mix, from which sessions draw SKUs."""

    mix: FloatArray  # (sku,) online line rate
    category: IntArray  # (sku,)
    colour: IntArray  # (sku,) index into COLOURS

    def draw(self, n: int, rng: np.random.Generator) -> IntArray:
        cum = np.cumsum(self.mix)
        picks = np.searchsorted(cum / cum[-1], rng.random(n), side="right")
        return np.minimum(picks, len(self.mix) - 1).astype(np.int64)

    def alternative(self, sku: IntArray, rng: np.random.Generator) -> IntArray:
        """Another SKU of the same category on sale online today (uniformly)."""
        on_sale = np.flatnonzero(self.mix > 0)
        by_cat = on_sale[np.argsort(self.category[on_sale], kind="stable")]
        counts = np.bincount(self.category[on_sale], minlength=len(CATEGORIES))
        starts = np.cumsum(counts) - counts
        cat = self.category[sku]
        pick = starts[cat] + np.floor(rng.random(len(sku)) * np.maximum(counts[cat], 1)).astype(np.int64)
        return np.where(counts[cat] > 0, by_cat[np.minimum(pick, len(by_cat) - 1)], sku).astype(np.int64)

    def search(self, sku: IntArray, rng: np.random.Generator) -> IntArray:
        n = len(sku)
        colour = np.where(rng.random(n) < 0.3, self.colour[sku], -1)
        return query_index(self.category[sku], rng.integers(0, _TERMS, size=n), colour)


def _assemble(
    parts: list[tuple[IntArray, ...]], start: IntArray, customer: IntArray, rng: np.random.Generator
) -> Events:
    """Order events by session and position, and time them with random gaps from the session start."""
    session, kind, sku, query, position, line = (np.concatenate(cols) for cols in zip(*parts, strict=True))
    order = np.lexsort((position, session))
    session, kind, sku, query, position, line = (a[order] for a in (session, kind, sku, query, position, line))
    gap = np.clip(rng.exponential(45.0, size=len(session)), 2.0, 600.0) * US_PER_SECOND
    first_purchase = np.r_[True, (kind[1:] != PURCHASE) | (kind[:-1] != PURCHASE) | (session[1:] != session[:-1])]
    gap = np.where((kind == PURCHASE) & ~first_purchase, 0.0, gap).astype(np.int64)
    cum = np.cumsum(gap)
    new_session = np.r_[True, session[1:] != session[:-1]]
    base = np.maximum.accumulate(np.where(new_session, cum - gap, 0))
    time = np.minimum(start[session] + cum - base, US_PER_DAY - 1)
    return Events(session, kind, customer[session], sku, time, query, position, line, start)


def sessions(
    online: OnlineDay,
    order_customer: IntArray,
    line_order: IntArray,
    line_sku: IntArray,
    line_index: IntArray,
    browse_customers: IntArray,
    n_browse: int,
    rng: np.random.Generator,
) -> tuple[Events, IntArray]:
    """Sessions of the day: one per online order (lines given by order), then `n_browse` browse-only ones.

    Returns the events and, per online order, its purchase time (microseconds into the day).
    """
    n_orders = len(order_customer)
    start = seconds_of_day(np.ones(n_orders + n_browse, dtype=np.int64), rng, _LATEST_START) * US_PER_SECOND
    parts: list[tuple[IntArray, ...]] = []
    # Purchase sessions: maybe a search for the first item, then per line (an alternative,) a view, a cart add.
    first = np.r_[True, line_order[1:] != line_order[:-1]] if len(line_order) else np.zeros(0, bool)
    searching = first & (rng.random(len(line_order)) < 0.4)
    minus = np.full(int(searching.sum()), -1, dtype=np.int64)
    parts.append(
        (
            line_order[searching],
            np.full(len(minus), SEARCH),
            minus,
            online.search(line_sku[searching], rng),
            np.zeros(len(minus), dtype=np.int64),
            minus,
        )
    )
    j = np.arange(len(line_order)) - np.maximum.accumulate(np.where(first, np.arange(len(line_order)), 0))
    none = np.full(len(line_order), -1, dtype=np.int64)
    alt = rng.random(len(line_order)) < 0.4
    parts.append(
        (
            line_order[alt],
            np.full(int(alt.sum()), VIEW),
            online.alternative(line_sku[alt], rng),
            none[alt],
            1 + 3 * j[alt],
            none[alt],
        )
    )
    parts.append((line_order, np.full(len(line_order), VIEW), line_sku, none, 2 + 3 * j, none))
    parts.append((line_order, np.full(len(line_order), CART), line_sku, none, 3 + 3 * j, none))
    parts.append((line_order, np.full(len(line_order), PURCHASE), line_sku, none, _PURCHASE_POS + j, line_index))
    parts.extend(_browse_parts(online, n_orders, n_browse, rng))
    customer = np.concatenate([order_customer, browse_customers]).astype(np.int64)
    events = _assemble(parts, start, customer, rng)
    purchase_time = np.zeros(n_orders, dtype=np.int64)
    is_purchase = events.kind == PURCHASE
    purchase_time[events.session[is_purchase]] = events.time[is_purchase]
    return events, purchase_time


def _browse_parts(online: OnlineDay, offset: int, n: int, rng: np.random.Generator) -> list[tuple[IntArray, ...]]:
    if n == 0 or online.mix.sum() <= 0:
        return []
    views = 1 + rng.poisson(1.5, size=n)
    session = np.repeat(np.arange(offset, offset + n, dtype=np.int64), views)
    first_sku = online.draw(n, rng)
    k = np.arange(len(session)) - np.repeat(np.cumsum(views) - views, views)
    sku = np.repeat(first_sku, views)
    later = k > 0
    same_cat = rng.random(len(session)) < 0.7
    sku[later & same_cat] = online.alternative(sku[later & same_cat], rng)
    other = later & ~same_cat
    sku[other] = online.draw(int(other.sum()), rng)
    none = np.full(len(session), -1, dtype=np.int64)
    searching = rng.random(n) < 0.35
    abandon = rng.random(n) < 0.15
    last_view = np.cumsum(views) - 1
    s_none = np.full(int(searching.sum()), -1, dtype=np.int64)
    a_none = np.full(int(abandon.sum()), -1, dtype=np.int64)
    return [
        (session, np.full(len(session), VIEW), sku, none, 1 + k, none),
        (
            np.arange(offset, offset + n)[searching],
            np.full(len(s_none), SEARCH),
            s_none,
            online.search(first_sku[searching], rng),
            np.zeros(len(s_none), dtype=np.int64),
            s_none,
        ),
        (
            session[last_view[abandon]],
            np.full(len(a_none), CART),
            sku[last_view[abandon]],
            a_none,
            views[abandon] + 1,
            a_none,
        ),
    ]
