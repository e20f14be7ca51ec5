"""Processing step: the catalogue from the lake's raw products and their images, split by SKU.

Reads the newest snapshot of `raw/products/` (`dt=` partitions) and the PNGs of `raw/product_images/`, each product's
image named by its `image_key`'s file name. Products without a usable image (none, missing, not decodable, another size
than the catalogue's) are quarantined with the reason; the rest become `catalogue/catalogue.npz`. The SKUs are split,
stratified by category, into training and held-out SKUs (`shelfwise.visual.training_data.SplitManifest`), written as
`catalogue/split.json`: the training step trains on the first only, and the evaluation scores on the second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from step_io import install_wheelhouse, read_partitioned, write_json, write_parquet

BASE = Path("/opt/ml/processing")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products-dir", type=Path, default=BASE / "input" / "products")
    parser.add_argument("--images-dir", type=Path, default=BASE / "input" / "images")
    parser.add_argument("--wheels-dir", type=Path, default=BASE / "input" / "wheels")
    parser.add_argument("--catalogue-dir", type=Path, default=BASE / "catalogue")
    parser.add_argument("--quarantine-dir", type=Path, default=BASE / "quarantine")
    parser.add_argument("--test-fraction", type=float, default=0.3, help="share of each category's SKUs held out")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def newest_snapshot(products_dir: Path) -> tuple[pd.DataFrame, str]:
    """The rows of the newest `dt` snapshot of the products table, and its date."""
    products = read_partitioned(products_dir, "dt")
    newest = products["dt"].max()
    if pd.isna(newest):
        raise SystemExit(f"the products under {products_dir} have no readable dt partition")
    return products[products["dt"] == newest].drop(columns=["dt"]), newest.date().isoformat()


def read_images(images_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(images_dir.rglob("*.png"))}


def main(argv: list[str]) -> str:
    args = parse_args(argv)
    install_wheelhouse(args.wheels_dir)
    from shelfwise.visual.training_data import SplitManifest, catalogue_from_products, save_catalogue, save_split

    products, snapshot = newest_snapshot(args.products_dir)
    catalogue, rejected = catalogue_from_products(products, read_images(args.images_dir))
    if rejected:
        write_parquet(pd.DataFrame(rejected), args.quarantine_dir / "products.parquet")
    split = SplitManifest.draw(catalogue, args.test_fraction, args.seed)
    save_catalogue(catalogue, args.catalogue_dir)
    save_split(split, args.catalogue_dir)
    size = catalogue.images.shape[1]
    write_json(
        {
            "snapshot": snapshot,
            "products": len(catalogue),
            "image_size": size,
            "categories": len(catalogue.categories),
            "quarantined": len(rejected),
        },
        args.catalogue_dir / "meta.json",
    )
    return (
        f"catalogue of {len(catalogue):,} products ({size}x{size}, {len(catalogue.categories)} categories) as of "
        f"{snapshot}: {len(split.train):,} to train on, {len(split.held_out):,} held out; {len(rejected):,} quarantined"
    )


if __name__ == "__main__":
    print(main(sys.argv[1:]))
