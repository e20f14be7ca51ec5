"""Clickstream consistent with the orders: search, view, add to cart, then purchase of the same SKU."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from .conftest import WorldTables


def test_every_online_sale_has_a_purchase_event_at_the_order_time(world: WorldTables) -> None:
    lines = world.order_lines
    sold = lines[(lines["channel"] == "online") & (lines["quantity"] > 0)]
    events = world.clickstream[world.clickstream["event_type"] == "purchase"]
    keys = ["customer_id", "sku", "ts"]
    a = sold[keys].fillna({"customer_id": "-"}).value_counts().sort_index()
    b = events[keys].fillna({"customer_id": "-"}).value_counts().sort_index()
    assert len(sold) > 1000
    assert a.equals(b)


def test_purchases_follow_a_view_and_a_cart_add_of_the_same_sku(world: WorldTables) -> None:
    ev = world.clickstream
    first = ev.groupby(["session_id", "sku", "event_type"])["ts"].min().unstack()
    bought = first[first["purchase"].notna()]
    assert bought["view"].notna().all()
    assert bought["add_to_cart"].notna().all()
    assert (bought["view"] <= bought["add_to_cart"]).all()
    assert (bought["add_to_cart"] <= bought["purchase"]).all()


def test_browse_only_sessions_and_searches(world: WorldTables) -> None:
    ev = world.clickstream
    with_purchase = ev.loc[ev["event_type"] == "purchase", "session_id"].unique()
    sessions = ev["session_id"].unique()
    assert 0.3 < 1 - len(with_purchase) / len(sessions) < 0.9
    searches = ev[ev["event_type"] == "search"]
    assert len(searches) > 0
    assert searches["sku"].isna().all()
    assert searches["query"].notna().all()
    others = ev[ev["event_type"] != "search"]
    assert others["sku"].notna().all()
    assert others["query"].isna().all()


def test_searches_name_the_category_of_what_the_session_viewed(world: WorldTables) -> None:
    ev = world.clickstream.merge(world.products[["sku", "category"]], on="sku", how="left")
    searches = ev[ev["event_type"] == "search"].set_index("session_id")["query"]
    terms = {
        "swimwear": "swim|bikini",
        "pantry staples": "pasta|rice|beans",
        "toys": "toy|ball|plush",
        "electronics accessories": "headphones|charger|cable",
    }
    for category, pattern in terms.items():
        viewed = ev[(ev["event_type"] == "view") & (ev["category"] == category)]["session_id"].unique()
        queries = searches[searches.index.isin(viewed)]
        assert len(queries) > 20, category
        assert queries.str.contains(pattern).mean() > 0.5, category


def test_events_are_ordered_and_uniquely_numbered(world: WorldTables) -> None:
    ev = world.clickstream
    assert ev["event_id"].is_unique
    assert ev["ts"].is_monotonic_increasing
    assert (ev["ts"] >= pd.Timestamp("2023-01-01")).all()
    assert (ev["ts"] < pd.Timestamp("2025-01-01")).all()
