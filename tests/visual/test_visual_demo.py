"""The visual part of `shelfwise demo`: a tiny model and index stored in a moto lake as the pipeline stores them, the
report's three searches (table and contact sheet) and its requests sent through the local API."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from shelfwise.bench.visual_world import VisualWorld, prepare_visual_world
from shelfwise.domain import DemoReport, DemoRequest
from shelfwise.lake import Lake
from shelfwise.loaders.fashion_mnist import CLASSES
from shelfwise.loaders.sources import FASHION_MNIST_CSV
from shelfwise.local_aws import local_aws
from shelfwise.visual.demo import (
    CELL,
    PAD,
    TOP,
    FashionDemo,
    catalogue_image,
    demo_products,
    demo_report,
    demo_requests,
    load_served,
    sheet_size,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not FASHION_MNIST_CSV.is_file(), reason=f"{FASHION_MNIST_CSV} not present"),
]
#: One epoch on 200 of the images: enough to search with, quick enough for a test.
TINY_FASHION = FashionDemo(epochs=1, held_out=0.8)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Lake, VisualWorld]]:
    """The lake as the pipeline leaves it: the served version, and the products' images where the index names them."""
    with local_aws() as aws:
        lake = Lake(aws.settings)
        world = prepare_visual_world(lake)
        for sku, png in world.pngs.items():
            lake.put_bytes(world.attributes[sku]["image_key"], png, "image/png")
        yield lake, world


@pytest.fixture(scope="module")
def report(served: tuple[Lake, VisualWorld], tmp_path_factory: pytest.TempPathFactory) -> DemoReport:
    lake, _ = served
    # The layout of `sagemaker/visual/evaluate.py`'s evaluation.json, abridged.
    evaluation = {
        "products": 200,
        "held_out": 61,
        "epochs": 600,
        "visual": {
            "photo_recall_at_1": 0.5082,
            "similar_from_photo_precision_at_1": 0.8197,
            "similar_precision_at_1": 0.9,
        },
        "margins": {"photo_recall_at_1": 0.1476, "similar_from_photo_precision_at_1": 0.4918},
        "baselines": {"RGB histogram 8^3": {"photo_recall_at_1": 0.3607}},
    }
    return demo_report(lake, tmp_path_factory.mktemp("world"), evaluation, TINY_FASHION)


def skus_of(row: tuple[str, ...]) -> list[str]:
    """The answers' SKUs of a table row (each answer cell is "SKU\\ncategory\\nscore")."""
    return [cell.split("\n")[0] for cell in row[2:]]


def test_the_table_names_the_query_products_neighbours_from_the_served_index(
    served: tuple[Lake, VisualWorld], report: DemoReport
) -> None:
    lake, world = served
    similar_sku, photo_sku = demo_products(load_served(lake))
    assert similar_sku != photo_sku
    assert len(report.rows) == 3
    assert len(report.columns) == 2 + TOP
    similar_row, photo_row, fashion_row = report.rows
    assert similar_row[1] == f"{similar_sku}\n{world.attributes[similar_sku]['category']}"
    assert skus_of(similar_row) == [hit.sku for hit in world.index.neighbours(similar_sku, TOP)]
    assert photo_row[1].startswith(photo_sku + "\n")
    assert len(set(skus_of(photo_row))) == TOP
    assert set(skus_of(photo_row)) <= set(world.skus)
    for row in report.rows:
        scores = [float(cell.split("\n")[2]) for cell in row[2:]]
        assert scores == sorted(scores, reverse=True)
    fashion_query, fashion_category = fashion_row[1].split("\n")
    assert fashion_category in {name for name, *_ in CLASSES.values()}
    assert fashion_query not in world.skus
    assert fashion_query not in skus_of(fashion_row)
    assert len(set(skus_of(fashion_row))) == TOP


def test_the_notes_give_the_evaluations_figures_and_the_fashion_baseline(report: DemoReport) -> None:
    text = "\n".join(report.notes)
    assert "on 61 held-out of 200 products" in text
    assert "product from a photo, recall@1 0.508 (+0.148 over the best baseline)" in text
    assert "similar products from a photo, precision@1 0.820 (+0.492 over the best baseline)" in text
    assert "from the catalogue image, precision@1 0.900" in text
    assert "Fashion-MNIST: a 1-epoch model trained on 200 of the images" in text
    assert "with raw pixels" in text


def test_the_contact_sheet_draws_each_query_then_its_answers(
    served: tuple[Lake, VisualWorld], report: DemoReport
) -> None:
    lake, world = served
    assert report.picture == lake.cfg.work_dir / "reports" / "visual.png"
    assert report.picture.is_file()
    with Image.open(report.picture) as opened:
        sheet = np.asarray(opened.convert("RGB"))
    assert sheet_size(3) == (PAD + (1 + TOP) * (CELL + PAD), PAD + 3 * (CELL + 44 + PAD))
    assert (sheet.shape[1], sheet.shape[0]) == sheet_size(3)

    def cell(row: int, column: int) -> np.ndarray:
        top, left = PAD + row * (CELL + 44 + PAD), PAD + column * (CELL + PAD)
        return sheet[top : top + CELL, left : left + CELL]

    def drawn(png: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(png)) as image:
            return np.asarray(image.convert("RGB").resize((CELL, CELL), Image.Resampling.NEAREST))

    similar_sku, _ = demo_products(load_served(lake))
    first_neighbour = skus_of(report.rows[0])[0]
    assert np.array_equal(cell(0, 0), drawn(world.pngs[similar_sku]))
    assert np.array_equal(cell(0, 1), drawn(world.pngs[first_neighbour]))
    # The photo row starts with the photo, not with the catalogue image it was taken of.
    photo_sku = report.rows[1][1].split("\n")[0]
    assert not np.array_equal(cell(1, 0), drawn(world.pngs[photo_sku]))
    # A Fashion-MNIST image is grey.
    fashion = cell(2, 0).astype(int)
    assert np.array_equal(fashion[..., 0], fashion[..., 1])
    assert np.array_equal(fashion[..., 1], fashion[..., 2])


def send(url: str, request: DemoRequest) -> tuple[int, dict[str, Any]]:
    """As `shelfwise demo` sends a request to the local API."""
    data = None if request.body is None else json.dumps(request.body).encode()
    http = urllib.request.Request(
        url + request.path, data=data, method=request.method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(http, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_the_requests_answer_as_the_report_shows_and_fail_where_they_should(
    served: tuple[Lake, VisualWorld], report: DemoReport, tmp_path: Path
) -> None:
    from shelfwise.local_api import start_local_api

    lake, world = served
    requests = demo_requests(lake, "predictions/visual/unused/")
    with start_local_api(port=0) as api:
        answers = [send(api.url, request) for request in requests]
    statuses = [status for status, _ in answers]
    assert statuses == [200, 200, 200, 200, 404, 400, 400], answers
    similar, in_stock, photo, same_category = (body["results"] for _, body in answers[:4])
    assert [r["sku"] for r in similar] == skus_of(report.rows[0])
    assert len(in_stock) == TOP
    assert all(r["in_stock"] for r in in_stock)
    # The request's photo is the report's: the API finds what the report shows.
    assert [r["sku"] for r in photo] == skus_of(report.rows[1])
    category = world.attributes[report.rows[1][1].split("\n")[0]]["category"]
    assert len(same_category) == TOP
    assert {r["category"] for r in same_category} == {category}
    assert answers[4][1]["error"]["field"] == "sku"
    assert answers[5][1]["error"]["field"] == "image"
    assert answers[6][1]["error"]["field"] == "k"


def test_a_product_image_is_found_where_ingest_or_the_world_folder_keeps_it(
    served: tuple[Lake, VisualWorld], tmp_path: Path
) -> None:
    """A world's products table names `images/<sku>.png` inside the world folder; ingest copies it to
    raw/product_images/."""
    lake, world = served
    ingested, local = world.skus[:2]
    lake.put_bytes(f"raw/product_images/{ingested}.png", world.pngs[ingested], "image/png")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / f"{local}.png").write_bytes(world.pngs[local])
    for sku in (ingested, local):
        with Image.open(io.BytesIO(world.pngs[sku])) as image:
            expected = np.asarray(image.convert("RGB"))
        assert np.array_equal(catalogue_image(lake, tmp_path, f"images/{sku}.png"), expected)
    with pytest.raises(FileNotFoundError, match=r"images/NO-SUCH\.png"):
        catalogue_image(lake, tmp_path, "images/NO-SUCH.png")
