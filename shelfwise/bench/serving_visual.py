"""`shelfwise bench serving visual`: latency of the visual search handler's two routes against their floors, and its
cold start.

The lake holds what the batch-embed step leaves (`shelfwise.bench.visual_world.prepare_visual_world`: a catalogue of
drawn products, an embedding model of the pipeline's architecture trained briefly on it, exported to ONNX, and the
faiss index of the catalogue, stored with `store_search_version`). Every route is called through the real handler
(`lambdas/visual/app.py`) with the events API Gateway sends; once warm, a container answers from memory (the index
and the model are loaded once), so no measurement below includes a lake or OpenSearch round trip. Each route is put
beside the same work without the handler and beside its floor, measured in the same run: for the similar route a bare
faiss search of the stored vector, for the image search the ONNX embedding alone (its share of the search is
printed) and the image decoding alone. Queries are shopper photos of catalogue products (`shelfwise.visual.augment`),
as the 64x64 PNG the model sees and as a 1024x1024 JPEG, the size a shopping app uploads after its own resize.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import random
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import typer

from shelfwise.bench.serving import (
    DEMAND_NOT_IN_BUNDLE,
    ColdStarts,
    Latency,
    answered,
    bench_aws,
    cold_start,
    cold_table,
    latency_table,
    load_average_line,
    warm_latencies,
)

if TYPE_CHECKING:
    import numpy as np
    from rich.console import Console

    from shelfwise.bench.visual_world import VisualWorld

#: What the development environment has and the visual bundle (lambdas/visual/requirements.txt) has not.
VISUAL_NOT_IN_BUNDLE = (*DEMAND_NOT_IN_BUNDLE, "onnx", "timm")
#: Results asked of every search: the route's default.
K = 10
#: The side of the uploaded JPEG.
UPLOAD_SIDE = 1024


@dataclass(frozen=True)
class Uploads:
    """Shopper photos of catalogue products as a client sends them: PNGs of the model's size and large JPEGs."""

    skus: list[str]
    pngs: list[bytes]
    jpegs: list[bytes]


def shopper_uploads(world: VisualWorld, n: int, seed: int) -> Uploads:
    """`n` shopper photos of random catalogue products, each as a PNG of the catalogue's size and as a JPEG
    (quality 90) scaled up to `UPLOAD_SIDE`."""
    import numpy as np
    from PIL import Image

    from shelfwise.visual.augment import shopper_photos

    rng = np.random.default_rng(seed)
    skus = [world.skus[i] for i in rng.integers(len(world.skus), size=n)]
    catalogue = np.stack([np.asarray(Image.open(io.BytesIO(world.pngs[sku])).convert("RGB")) for sku in skus])
    photos = shopper_photos(catalogue, rng)
    pngs, jpegs = [], []
    for photo in photos:
        image = Image.fromarray(photo)
        pngs.append(_encoded(image, "PNG"))
        jpegs.append(_encoded(image.resize((UPLOAD_SIDE, UPLOAD_SIDE), Image.Resampling.BICUBIC), "JPEG", quality=90))
    return Uploads(skus, pngs, jpegs)


def _encoded(image: Any, image_format: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


def similar_event(sku: str) -> dict[str, Any]:
    from urllib.parse import quote

    from shelfwise.local_api import proxy_event

    return proxy_event(
        "GET",
        f"/products/{quote(sku, safe='')}/similar",
        resource="/products/{sku}/similar",
        path_parameters={"sku": sku},
        query=[("k", str(K))],
        headers={"Accept": "application/json"},
    )


def binary_search_event(image: bytes, content_type: str) -> dict[str, Any]:
    """As API Gateway passes a body whose type is among the API's binary media types: base64-encoded."""
    from shelfwise.local_api import proxy_event

    event = proxy_event("POST", "/search/visual", headers={"Content-Type": content_type}, query=[("k", str(K))])
    event["body"], event["isBase64Encoded"] = base64.b64encode(image).decode(), True
    return event


def json_search_event(image: bytes) -> dict[str, Any]:
    from shelfwise.local_api import proxy_event

    body = json.dumps({"image": base64.b64encode(image).decode(), "k": K})
    return proxy_event("POST", "/search/visual", headers={"Content-Type": "application/json"}, body=body)


def floor_files(world: VisualWorld, folder: Path) -> Path:
    """The served model and index as local files, for the cold-start floor."""
    from shelfwise.visual.faiss_index import INDEX_FILE

    (folder / "model.onnx").write_bytes(world.model)
    (folder / "index.faiss").write_bytes(world.index.to_files()[INDEX_FILE])
    return folder


@dataclass(frozen=True)
class VisualColdStarts:
    """Medians of fresh interpreters: the handler's first image search (bundle and venv) and first similar request
    (bundle), and the floor."""

    search: ColdStarts
    similar_bundle: dict[str, float]


def command(
    requests: int = typer.Option(2000, min=10, help="Timed requests per measurement."),
    products: int = typer.Option(500, min=20, help="Products in the catalogue (the default world has 500)."),
    epochs: int = typer.Option(
        2, min=1, help="Training epochs of the served model (its speed does not depend on them)."
    ),
    photos: int = typer.Option(200, min=1, help="Distinct shopper photos the searches cycle through."),
    cold_runs: int = typer.Option(5, min=1, help="Fresh interpreters for each cold start (median)."),
) -> None:
    """Visual search API: warm latency of the similar route and of the image search through the handler, beside a
    bare faiss search, the ONNX embedding and the decoding alone; cold initialisation beside its floor."""
    import boto3
    from rich.console import Console

    from shelfwise.bench.visual_world import prepare_visual_world
    from shelfwise.local_api import LAMBDAS_DIR, LocalLambdaContext, load_lambda
    from shelfwise.visual.embedding import EmbeddingSettings
    from shelfwise.visual.search_store import LakeObjects

    console = Console()
    architecture = EmbeddingSettings()  # the pipeline's network: what the Lambda runs
    with bench_aws(console) as (cfg, progress, task):
        progress.update(task, description=f"training a {epochs}-epoch model on {products} products and indexing them")
        s3 = boto3.client("s3", region_name=cfg.region, endpoint_url=cfg.aws_endpoint_url)
        store = LakeObjects(s3, cfg.lake_bucket, cfg.expected_owner())
        world = prepare_visual_world(
            store, products, architecture.image_size, architecture.dim, epochs, width=architecture.width
        )
        uploads = shopper_uploads(world, photos, seed=11)
        lam = load_lambda("visual", fresh=True)
        context = LocalLambdaContext(function_name="visual-bench")
        rng = random.Random(1)
        similar_skus = rng.choices(world.skus, k=requests)
        picks = rng.choices(range(photos), k=requests)
        suites = warm_suites(lam, context, world, uploads, similar_skus, picks)
        results = warm_latencies(suites, progress, task)
        load = os.getloadavg()
        progress.update(task, description="cold starts (fresh interpreters)", total=None)
        handler_dir = LAMBDAS_DIR / "visual"
        first_search = json.dumps(binary_search_event(uploads.pngs[0], "image/png"))
        first_similar = json.dumps(similar_event(world.skus[0]))
        with tempfile.TemporaryDirectory() as tmp:
            floor = cold_start(cold_runs, "onnx", floor_files(world, Path(tmp)), VISUAL_NOT_IN_BUNDLE)
        cold = VisualColdStarts(
            ColdStarts(
                cold_runs,
                cold_start(cold_runs, "demand", handler_dir, VISUAL_NOT_IN_BUNDLE, first_search),
                cold_start(cold_runs, "demand", handler_dir, (), first_search),
                floor,
            ),
            cold_start(cold_runs, "demand", handler_dir, VISUAL_NOT_IN_BUNDLE, first_similar),
        )
    print_visual_results(console, world, results, load, cold)


def warm_suites(
    lam: ModuleType,
    context: Any,
    world: VisualWorld,
    uploads: Uploads,
    similar_skus: list[str],
    picks: list[int],
) -> list[tuple[str, list[Callable[[], object]]]]:
    """The measurements, in the order `print_visual_results` reads them: each route through the handler, its work
    without the handler (the same loaded index and model, called directly), and the floors."""
    from shelfwise.visual.images import decode_image, to_model_input

    service = lam.service()
    index, embedder = service.index().index, service.model().embedder
    graph, size = index.graph, embedder.image_size
    stored = {sku: index.vector(sku)[None] for sku in set(similar_skus)}
    model_inputs = [to_model_input(decode_image(png, "image/png"), size) for png in uploads.pngs]
    vectors = [embedder.embed(pixels)[None] for pixels in model_inputs]

    def handled(event: dict[str, Any]) -> Callable[[], object]:
        return lambda: answered(lam.handler(event, context))

    def searched(image: bytes, content_type: str) -> Callable[[], object]:
        return lambda: index.search(embedder.embed(to_model_input(decode_image(image, content_type), size)), K)

    def decoded(image: bytes, content_type: str) -> Callable[[], object]:
        return lambda: to_model_input(decode_image(image, content_type), size)

    def bare(vector: np.ndarray, k: int) -> Callable[[], object]:
        return lambda: graph.search(vector, k)

    def embedded(pixels: np.ndarray) -> Callable[[], object]:
        return lambda: embedder.embed(pixels)

    pngs, jpegs = [uploads.pngs[i] for i in picks], [uploads.jpegs[i] for i in picks]
    return [
        ("GET /products/{sku}/similar (handler)", [handled(similar_event(sku)) for sku in similar_skus]),
        ("no handler: FaissIndex.neighbours", [functools.partial(index.neighbours, sku, K) for sku in similar_skus]),
        (f"bare faiss HNSW search of the stored vector, k={K + 1}", [bare(stored[s], K + 1) for s in similar_skus]),
        ("POST /search/visual, 64x64 PNG body (handler)", [handled(binary_search_event(p, "image/png")) for p in pngs]),
        ("POST /search/visual, JSON with base64 PNG (handler)", [handled(json_search_event(p)) for p in pngs]),
        (
            f"POST /search/visual, {UPLOAD_SIDE}x{UPLOAD_SIDE} JPEG body (handler)",
            [handled(binary_search_event(j, "image/jpeg")) for j in jpegs],
        ),
        ("no handler: PNG -> decode -> embed -> search", [searched(p, "image/png") for p in pngs]),
        ("no handler: JPEG -> decode -> embed -> search", [searched(j, "image/jpeg") for j in jpegs]),
        ("decode + fit to the model's input alone, PNG", [decoded(p, "image/png") for p in pngs]),
        ("decode + fit to the model's input alone, JPEG", [decoded(j, "image/jpeg") for j in jpegs]),
        ("ONNX Runtime embedding alone (1 image, 1 thread)", [embedded(model_inputs[i]) for i in picks]),
        (f"bare faiss HNSW search of a query vector, k={K}", [bare(vectors[i], K) for i in picks]),
    ]


def print_visual_results(
    console: Console,
    world: VisualWorld,
    results: list[Latency],
    load: tuple[float, float, float],
    cold: VisualColdStarts,
) -> None:
    """The latency table (each route against its work without the handler, bare faiss and the embedding), the cold
    start table and the key figures."""
    similar, similar_core, faiss_similar, png, _, jpeg, png_core, jpeg_core, *_, embed, faiss_query = results
    title = (
        f"visual search API, {len(similar.samples_ms)} requests each; embedded index of {len(world.skus)} products, "
        f"dim {world.index.dimension}, k={K}"
    )
    baselines: list[list[Latency | None]] = [
        [similar_core, faiss_similar, None],
        [None, faiss_similar, None],
        [None, None, None],
        [png_core, faiss_query, embed],
        [png_core, faiss_query, embed],
        [jpeg_core, faiss_query, embed],
        [None, faiss_query, embed],
        [None, faiss_query, embed],
        [None, None, embed],
        [None, None, embed],
        [None, None, None],
        [None, None, None],
    ]
    rows = list(zip(results, baselines, strict=True))
    console.print(latency_table(title, rows, ["p50 / no handler", "p50 / bare faiss", "p50 / ONNX embed"]))
    console.print(load_average_line(load))
    bundle, venv, floor = cold.search.bundle, cold.search.venv, cold.search.floor
    cold_rows = [
        ("handler, first image search, Lambda bundle (packages not in requirements hidden)", bundle),
        ("handler, first image search, full venv", venv),
        ("handler, first similar request (no model load), Lambda bundle", cold.similar_bundle),
        ("floor: import onnxruntime + faiss, load model.onnx and index.faiss from disk, one query", floor),
    ]
    console.print(cold_table(cold.search.runs, "first answer s", cold_rows, floor))
    share = embed.percentile(50) / png.percentile(50)
    console.print(
        f"visual serving ({len(world.skus)} products, dim {world.index.dimension}): similar p50 "
        f"{similar.percentile(50):.2f} ms p99 {similar.percentile(99):.2f} ms without OpenSearch (target <= 5 ms; "
        f"{similar.percentile(50) / faiss_similar.percentile(50):.1f}x a bare faiss search "
        f"{faiss_similar.percentile(50):.3f} ms); image search p50 {png.percentile(50):.2f} ms p99 "
        f"{png.percentile(99):.2f} ms (64x64 PNG), {jpeg.percentile(50):.2f} / {jpeg.percentile(99):.2f} ms "
        f"({UPLOAD_SIDE}px JPEG); the ONNX embedding {embed.percentile(50):.2f} ms is {share:.0%} of the PNG "
        f"search; cold init to the first search {bundle['total_s']:.2f} s bundle "
        f"({bundle['total_s'] / floor['total_s']:.1f}x the floor {floor['total_s']:.2f} s), "
        f"{cold.similar_bundle['total_s']:.2f} s to the first similar, {venv['total_s']:.2f} s venv (target <= 3 s)",
        soft_wrap=True,
    )
