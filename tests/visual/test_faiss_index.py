"""The embedded faiss index: exactness on a small catalogue, filters, neighbours, bad input, and its round trip
through the lake on a moto server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pyarrow as pa
import pytest

from shelfwise.lake import Lake
from shelfwise.local_aws import local_aws
from shelfwise.schemas import PRODUCT_SCHEMA
from shelfwise.visual.faiss_index import FaissIndex, load_index, rollback_index, store_index
from shelfwise.visual.index import (
    Catalogue,
    Filters,
    HnswParams,
    InvalidCatalogueError,
    InvalidQueryError,
    Product,
    UnknownSkuError,
    knn_score,
    knn_score_of,
    make_catalogue,
    memory_bytes,
    world_catalogue,
)
from shelfwise.visual.index_store import EMBEDDED_POINTER, IndexNotFoundError, read_pointer

DIM = 16


def clustered(n: int, seed: int = 0) -> Catalogue:
    """n products in 12 clusters of directions; attributes drawn independently of the vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, DIM))
    vectors = centres[rng.integers(0, 12, n)] + 0.35 * rng.standard_normal((n, DIM))
    categories = np.array(["mugs", "lamps", "rugs", "vases"])[rng.integers(0, 4, n)]
    columns = {
        "sku": [f"SKU{i:05d}" for i in range(n)],
        "category": categories,
        "department": np.where(categories == "rugs", "textiles", "home"),
        "price": np.round(rng.uniform(1, 100, n), 2),
        "in_stock": rng.random(n) < 0.7,
        "image_key": [f"images/SKU{i:05d}.png" for i in range(n)],
        "brand": rng.choice(["acme", "nordic"], n),
        "colour": rng.choice(["red", "teal"], n),
        "pattern": rng.choice(["plain", "dots"], n),
    }
    return make_catalogue(vectors, columns)


def exact(data: Catalogue, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> list[str]:
    unit = query / np.linalg.norm(query)
    ips = data.vectors.astype(np.float64) @ unit
    if mask is not None:
        ips = np.where(mask, ips, -np.inf)
    order = np.argsort(-ips, kind="stable")[:k]
    return [str(data.columns["sku"][i]) for i in order if np.isfinite(ips[i])]


@pytest.fixture(scope="module")
def data() -> Catalogue:
    return clustered(600)


@pytest.fixture(scope="module")
def index(data: Catalogue) -> FaissIndex:
    return FaissIndex.build(data, HnswParams(m=16, ef_construction=100, ef_search=64))


def test_hnsw_top_k_equals_exact_search_on_a_small_catalogue(data: Catalogue, index: FaissIndex) -> None:
    queries = np.random.default_rng(1).standard_normal((25, DIM))
    for query in queries:
        hits = index.search(query, 10)
        assert [h.sku for h in hits] == exact(data, query, 10)
        unit = query / np.linalg.norm(query)
        rows = [int(h.sku[3:]) for h in hits]
        np.testing.assert_allclose([h.score for h in hits], knn_score(data.vectors[rows] @ unit), rtol=1e-5)


@pytest.mark.parametrize(
    "filters",
    [
        Filters(category="lamps"),
        Filters(department="textiles", in_stock=True),
        Filters(price_min=20.0, price_max=35.5),
        Filters(category="vases", price_max=12.0, in_stock=False),  # a handful of products
    ],
)
@pytest.mark.parametrize("exact_scan_work", [0, 10**9], ids=["graph with selector", "exact scan"])
def test_filters_return_only_matching_products_and_k_of_them_when_k_match(
    data: Catalogue, filters: Filters, exact_scan_work: int
) -> None:
    index = FaissIndex.build(data, HnswParams(m=16, ef_construction=100, ef_search=64), exact_scan_work)
    c = data.columns
    mask = np.ones(data.size, dtype=bool)
    for name in ("category", "department", "in_stock"):
        if getattr(filters, name) is not None:
            mask &= c[name] == getattr(filters, name)
    mask &= (c["price"] >= (filters.price_min or 0)) & (c["price"] <= (filters.price_max or np.inf))
    k, found = 10, []
    for query in np.random.default_rng(2).standard_normal((20, DIM)):
        hits = index.search(query, k, filters)
        assert all(mask[int(h.sku[3:])] for h in hits)
        assert len(hits) == min(k, int(mask.sum()))
        found.append(len({h.sku for h in hits} & set(exact(data, query, k, mask))) / len(hits))
    # A filtered graph walk may miss a neighbour (as the k-NN plugin's does); an exact scan never.
    assert np.mean(found) >= (0.95 if exact_scan_work == 0 else 1.0)


def test_a_filter_nothing_passes_returns_no_hits(index: FaissIndex) -> None:
    assert index.search(np.ones(DIM), 5, Filters(category="sofas")) == []
    assert index.search(np.ones(DIM), 5, Filters(price_min=1000.0)) == []


@pytest.mark.parametrize("exact_scan_work", [0, 10**9], ids=["graph with selector", "exact scan"])
def test_neighbours_leave_the_product_itself_out_with_and_without_filters(
    data: Catalogue, exact_scan_work: int
) -> None:
    index = FaissIndex.build(data, HnswParams(m=16, ef_construction=100, ef_search=64), exact_scan_work)
    for sku in ("SKU00000", "SKU00123", "SKU00599"):
        row = int(sku[3:])
        hits = index.neighbours(sku, 8)
        assert sku not in [h.sku for h in hits]
        assert [h.sku for h in hits] == [s for s in exact(data, data.vectors[row], 9) if s != sku][:8]
        category = str(data.columns["category"][row])
        for _ in range(2):  # the second time from the remembered selection, which must still hold the product
            filtered = index.neighbours(sku, 8, Filters(category=category))
            assert len(filtered) == 8
            assert sku not in [h.sku for h in filtered]
            assert {h.attributes["category"] for h in filtered} == {category}
        assert sku in [h.sku for h in index.search(data.vectors[row], 1, Filters(category=category))]
    np.testing.assert_allclose(index.vector("SKU00042"), data.vectors[42])


def test_unknown_skus_and_bad_queries_raise_typed_errors_naming_the_problem(index: FaissIndex) -> None:
    with pytest.raises(UnknownSkuError, match="SKU99999"):
        index.neighbours("SKU99999", 5)
    with pytest.raises(UnknownSkuError):
        index.vector("nope")
    with pytest.raises(InvalidQueryError, match="vector: expected 16 numbers") as wrong_size:
        index.search(np.ones(DIM + 1), 5)
    assert wrong_size.value.field == "vector"
    with pytest.raises(InvalidQueryError, match="zero length"):
        index.search(np.zeros(DIM), 5)
    for bad_k in (0, -1, 10_001, 2.5, True):
        with pytest.raises(InvalidQueryError, match=r"^k: "):
            index.search(np.ones(DIM), bad_k)  # type: ignore[arg-type]
    with pytest.raises(InvalidQueryError, match=r"filters.price_min: 50.0 is above filters.price_max 10.0"):
        Filters(price_min=50.0, price_max=10.0)
    with pytest.raises(InvalidQueryError, match=r"filters\.price_max"):
        Filters(price_max=float("nan"))


def test_a_catalogue_refuses_duplicate_skus_and_misaligned_columns(data: Catalogue) -> None:
    columns = {name: list(values) for name, values in data.columns.items()}
    columns["sku"][1] = columns["sku"][0]
    with pytest.raises(InvalidCatalogueError, match=r"duplicate SKUs, e\.g\. SKU00000"):
        make_catalogue(data.vectors, columns)
    with pytest.raises(InvalidCatalogueError, match="599 values of brand for 600 vectors"):
        make_catalogue(data.vectors, {**data.columns, "brand": data.columns["brand"][1:]})


def test_world_catalogue_maps_the_products_table() -> None:
    products = pa.Table.from_pylist(
        [
            {
                "sku": f"SKU0000{i}",
                "department": "home",
                "category": "kitchen",
                "brand": "acme",
                "base_price": 9.5 + i,
                "launch_date": dt.date(2023, 1, i),
                "end_date": None,
                "image_key": f"images/SKU0000{i}.png",
                "attributes": [("color", "red"), ("pattern", "dots")],
            }
            for i in (1, 2)
        ],
        schema=PRODUCT_SCHEMA,
    )
    data = world_catalogue(products, ["SKU00002", "SKU00001"], np.eye(2, DIM), in_stock={"SKU00001": False})
    assert data.row(0) == {
        "sku": "SKU00002",
        "category": "kitchen",
        "department": "home",
        "price": 11.5,
        "in_stock": True,
        "image_key": "images/SKU00002.png",
        "brand": "acme",
        "colour": "red",
        "pattern": "dots",
    }
    assert data.row(1)["in_stock"] is False
    with pytest.raises(InvalidCatalogueError, match="not in the products table"):
        world_catalogue(products, ["SKU00009"], np.eye(1, DIM))


@pytest.fixture(scope="module")
def lake() -> Iterator[Lake]:
    with local_aws() as aws:
        yield Lake(aws.settings)


def test_the_index_round_trips_through_the_lake_behind_its_pointer(
    lake: Lake, data: Catalogue, index: FaissIndex
) -> None:
    with pytest.raises(IndexNotFoundError, match=EMBEDDED_POINTER):
        load_index(lake)
    first = store_index(index, lake, version="20240101000000000000")
    other = FaissIndex.build(clustered(50, seed=3))
    second = store_index(other, lake, version="20240102000000000000")

    assert read_pointer(lake, EMBEDDED_POINTER).version == second
    assert load_index(lake).size == 50
    assert rollback_index(lake) == first
    loaded = load_index(lake)
    query = np.random.default_rng(4).standard_normal(DIM)
    assert loaded.search(query, 7, Filters(in_stock=True)) == index.search(query, 7, Filters(in_stock=True))
    assert loaded.neighbours("SKU00010", 5) == index.neighbours("SKU00010", 5)
    assert loaded.params == index.params
    assert sorted(o.key.rsplit("/", 1)[-1] for o in lake.list(f"models/visual-index/{first}/")) == [
        "attributes.json",
        "index.faiss",
        "manifest.json",
    ]


def test_scores_follow_the_knn_plugins_innerproduct_convention() -> None:
    ips = np.array([1.0, 0.5, 0.0, -0.5, -1.0])
    np.testing.assert_allclose(knn_score(ips), [2.0, 1.5, 1.0, 1 / 1.5, 0.5])
    assert [knn_score_of(float(ip)) for ip in ips] == pytest.approx(knn_score(ips).tolist())


def test_the_memory_estimate_is_the_plugins_formula() -> None:
    assert memory_bytes(1_000_000, 128, 16) == 704_000_000  # 1.1 x (4 x 128 + 8 x 16) x 1M
    assert memory_bytes(500, 64, 8) == 176_000


def test_a_catalogue_of_products_normalises_their_vectors_and_keeps_their_attributes() -> None:
    products = [
        Product(f"SKU{i}", (3.0, 4.0 + i, 0.0), "mugs", "home", 5.0 + i, i % 2 == 0, f"images/SKU{i}.png", "acme")
        for i in range(3)
    ]
    data = Catalogue.from_products(products)
    first = data.product(0)
    assert first == replace(products[0], vector=first.vector)
    assert first.vector == pytest.approx((0.6, 0.8, 0.0))
    assert data.product(2).in_stock is True
    assert [h.sku for h in FaissIndex.build(data).neighbours("SKU1", 2)] == ["SKU2", "SKU0"]
    with pytest.raises(InvalidCatalogueError, match="no products"):
        Catalogue.from_products([])
