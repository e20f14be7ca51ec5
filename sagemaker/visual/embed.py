"""Processing step: batch embed every catalogue image with the approved visual model and build the index from it.

The model archive is checked against the sha256 recorded at its registration. Each product of the newest products
snapshot with an image is embedded by the package's ONNX model through the query path the API uses
(`shelfwise.visual.batch_embed`); products without a usable image are quarantined. The faiss index of the embeddings
and the query model are written to the lake as a new version of `--index-uri`, and its CURRENT.json pointer moved
last (`shelfwise.visual.search_store.store_search_version`): the API's next load serves the new model with the
vectors it made, or, until the pointer moves, the old pair.

On the OpenSearch backends (`--search-backend`), the same embeddings are then loaded into a new version of the
OpenSearch index and made live (`shelfwise.visual.batch_embed.load_opensearch`); the lake's version is still written,
because the API reads the query model from it.

Writes `predictions/embeddings.parquet` (sku, embedding, model_version, index_version) and `predictions/index.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd
from prepare import newest_snapshot, read_images
from step_io import install_wheelhouse, registered_archive, unpack_archive, write_json, write_parquet

BASE = Path("/opt/ml/processing")
ONNX_FILE = "model.onnx"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, default=BASE / "model", help="holds model.tar.gz")
    parser.add_argument("--model-sha256", default="", help="the sha256 recorded when the package was registered")
    parser.add_argument("--model-package", default="", help="the package's ARN, recorded with the index")
    parser.add_argument("--products-dir", type=Path, default=BASE / "input" / "products")
    parser.add_argument("--images-dir", type=Path, default=BASE / "input" / "images")
    parser.add_argument("--wheels-dir", type=Path, default=BASE / "input" / "wheels")
    parser.add_argument("--predictions-dir", type=Path, default=BASE / "predictions")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    parser.add_argument("--images-uri", required=True, help="the S3 URI the images were read from (their lake keys)")
    parser.add_argument("--index-uri", required=True, help="s3://<lake bucket>/<the index's versions prefix>")
    parser.add_argument("--search-backend", default="embedded", help="embedded, opensearch or opensearch-serverless")
    parser.add_argument("--search-endpoint", default="", help="the OpenSearch backend's https endpoint")
    parser.add_argument("--search-index", default="visual-products", help="the OpenSearch alias or index prefix")
    return parser.parse_args(argv)


def bucket_and_prefix(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise SystemExit(f"expected s3://bucket/prefix/, got {uri!r}")
    bucket, prefix = uri[5:].split("/", 1)
    return bucket, prefix


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels_dir)
    import boto3

    from shelfwise.visual.batch_embed import BACKENDS, embed_products, index_catalogue, load_opensearch
    from shelfwise.visual.faiss_index import FaissIndex
    from shelfwise.visual.query_embedder import QueryEmbedder
    from shelfwise.visual.search_store import LAKE_PREFIX, LakeObjects, store_search_version

    if args.search_backend not in BACKENDS:
        raise SystemExit(f"--search-backend must be one of {', '.join(BACKENDS)}, got {args.search_backend!r}")
    if args.search_backend != "embedded" and not args.search_endpoint:
        raise SystemExit(f"--search-backend {args.search_backend} needs --search-endpoint (pipeline SearchEndpoint)")
    bucket, prefix = bucket_and_prefix(args.index_uri)
    if prefix != LAKE_PREFIX:
        raise SystemExit(f"--index-uri must end in {LAKE_PREFIX}, where the API reads the index; got {args.index_uri}")
    work = args.predictions_dir.parent / "embed-work"
    work.mkdir(parents=True, exist_ok=True)
    unpack_archive(registered_archive(args.model_dir, args.model_sha256), work / "model")
    model = (work / "model" / ONNX_FILE).read_bytes()
    embedder = QueryEmbedder.from_bytes(model)

    products, snapshot = newest_snapshot(args.products_dir)
    embedded = embed_products(embedder, products, read_images(args.images_dir))
    if embedded.rejected:
        write_parquet(pd.DataFrame(list(embedded.rejected)), args.quarantine_dir / "products.parquet")
    if not embedded.skus:
        raise SystemExit(
            f"no product of the {snapshot} snapshot has a usable image ({len(embedded.rejected)} left out)"
        )
    _, image_prefix = bucket_and_prefix(args.images_uri.rstrip("/") + "/")
    catalogue = index_catalogue(products, embedded, image_prefix, dt.date.fromisoformat(snapshot))
    # The processing job's own credentials; the bucket is the deployment's lake, named by the pipeline definition.
    store = LakeObjects(boto3.client("s3"), bucket, {})
    # The lake's version on every backend: the API reads the query model of the version CURRENT.json names.
    version = store_search_version(store, FaissIndex.build(catalogue), model)
    loaded = ""
    if args.search_backend != "embedded":
        from shelfwise.visual.opensearch_index import FLAVOURS, opensearch_client

        region = boto3.session.Session().region_name
        client = opensearch_client(args.search_endpoint, region, FLAVOURS[args.search_backend])
        loaded = load_opensearch(client, args.search_backend, args.search_index, catalogue, store)

    frame = pd.DataFrame(
        {
            "sku": list(embedded.skus),
            "embedding": [vector.tolist() for vector in embedded.vectors],
            "model_package": args.model_package,
            "index_version": version,
        }
    )
    write_parquet(frame, args.predictions_dir / "embeddings.parquet")
    write_json(
        {
            "index_version": version,
            "search_backend": args.search_backend,
            "opensearch_index": loaded,
            "products": len(embedded.skus),
            "quarantined": len(embedded.rejected),
            "snapshot": snapshot,
            "dimension": embedder.dimension,
            "model_package": args.model_package,
            "model_sha256": args.model_sha256,
        },
        args.predictions_dir / "index.json",
    )
    into = f", loaded into {args.search_backend} index {loaded}" if loaded else ""
    return (
        f"index version {version}{into}: {len(embedded.skus):,} products of the {snapshot} snapshot embedded in "
        f"{embedder.dimension} dimensions; {len(embedded.rejected):,} quarantined"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
