"""What the `visual` pipeline's steps hand each other: the catalogue read from the lake's raw products and images, and
the split manifest that fixes which SKUs the model may train on and which it is evaluated on.

    catalogue.npz    images (n, H, W, 3) uint8, skus, category, department (in the catalogue's order)
    split.json       {"seed", "test_fraction", "train": [sku, ...], "held_out": [sku, ...]}

The split is by SKU (`shelfwise.visual.catalogue.split_by_sku`): a held-out product's image is never a training image,
which is the cold start the evaluation measures. The manifest names SKUs, not rows, so a step that reads it checks it
against the catalogue it has (`SplitManifest.rows`) instead of trusting row numbers.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shelfwise.visual.catalogue import Catalogue, CatalogueError, SkuSplit, split_by_sku

if TYPE_CHECKING:
    import pandas as pd
    from PIL import Image

CATALOGUE_FILE = "catalogue.npz"
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class SplitManifest:
    """The SKUs a model trains on and the held-out SKUs it is evaluated on, and how they were drawn."""

    train: tuple[str, ...]
    held_out: tuple[str, ...]
    seed: int
    test_fraction: float

    def __post_init__(self) -> None:
        leaked = sorted(set(self.train) & set(self.held_out))
        if leaked:
            raise CatalogueError(f"{len(leaked)} SKUs are both trained on and held out, e.g. {leaked[:3]}")
        if not self.train or not self.held_out:
            raise CatalogueError(
                f"a split needs SKUs on both sides, got {len(self.train)} to train on and {len(self.held_out)} held out"
            )

    @classmethod
    def draw(cls, catalogue: Catalogue, test_fraction: float, seed: int) -> SplitManifest:
        split = split_by_sku(catalogue, test_fraction, seed)
        return cls(
            train=tuple(catalogue.skus[i] for i in split.train),
            held_out=tuple(catalogue.skus[i] for i in split.test),
            seed=seed,
            test_fraction=test_fraction,
        )

    def rows(self, catalogue: Catalogue) -> SkuSplit:
        """The split as rows of `catalogue`, which must hold exactly the manifest's SKUs."""
        position = {sku: i for i, sku in enumerate(catalogue.skus)}
        named = set(self.train) | set(self.held_out)
        if named != set(position):
            missing, extra = sorted(named - set(position)), sorted(set(position) - named)
            raise CatalogueError(
                f"the split names other SKUs than the catalogue holds: {len(missing)} missing from it "
                f"(e.g. {missing[:3]}), {len(extra)} not in the split (e.g. {extra[:3]})"
            )
        return SkuSplit(
            train=np.array(sorted(position[s] for s in self.train), dtype=np.int64),
            test=np.array(sorted(position[s] for s in self.held_out), dtype=np.int64),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "test_fraction": self.test_fraction,
            "train": list(self.train),
            "held_out": list(self.held_out),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SplitManifest:
        return cls(tuple(data["train"]), tuple(data["held_out"]), int(data["seed"]), float(data["test_fraction"]))


def product_image(image_key: object, images: Mapping[str, bytes]) -> tuple[str, bytes] | str:
    """(key, bytes) of the image a product's `image_key` names (`images`: file name -> bytes, looked up by the key's
    file name, as ingest stores them), or why there is none."""
    if not isinstance(image_key, str) or not image_key:
        return "no image"
    data = images.get(Path(image_key).name)
    return f"image {image_key} not found" if data is None else (image_key, data)


def decode_catalogue_image(key: str, data: bytes) -> Image.Image | str:
    """A catalogue image decoded as the API decodes an upload (RGB, bombs refused), or why it does not decode. The
    API's size floor is for shoppers' uploads: catalogue images may be smaller (Fashion-MNIST's are 28 px)."""
    from shelfwise.visual.images import ImageError, ImageLimits, decode_image

    try:
        return decode_image(data, "image/png", ImageLimits(min_side=16))
    except ImageError as error:
        return f"image {key} does not decode: {error}"


def catalogue_from_products(
    products: pd.DataFrame, images: Mapping[str, bytes]
) -> tuple[Catalogue, list[dict[str, str]]]:
    """The catalogue of the products whose image decodes to the catalogue's size (the most frequent one), in SKU
    order, and a (sku, reason) row for every product left out: no image, a missing one, one that does not decode, one
    of another size. A bad product is left out with its reason rather than failing the run."""
    missing = {"sku", "category", "department", "image_key"} - set(products.columns)
    if missing:
        raise CatalogueError(f"the products table lacks column(s) {sorted(missing)}")
    decoded: dict[str, tuple[np.ndarray, str, str]] = {}
    rejected: list[dict[str, str]] = []
    for row in products.sort_values("sku", kind="stable").itertuples(index=False):
        sku = str(row.sku)
        found = product_image(row.image_key, images)
        image = found if isinstance(found, str) else decode_catalogue_image(*found)
        if isinstance(image, str):
            rejected.append({"sku": sku, "reason": image})
            continue
        decoded[sku] = (np.asarray(image, dtype=np.uint8), str(row.category), str(row.department))
    if not decoded:
        raise CatalogueError(f"no product has a usable image ({len(rejected)} left out)")
    shapes = [image.shape for image, _, _ in decoded.values()]
    common = max(set(shapes), key=lambda shape: (shapes.count(shape), shape))
    for sku in [s for s, (image, _, _) in decoded.items() if image.shape != common]:
        rejected.append(
            {"sku": sku, "reason": f"image is {decoded.pop(sku)[0].shape[:2]}, the catalogue's {common[:2]}"}
        )
    skus = tuple(decoded)
    catalogue = Catalogue(
        images=np.stack([decoded[s][0] for s in skus]),
        skus=skus,
        category=tuple(decoded[s][1] for s in skus),
        department=tuple(decoded[s][2] for s in skus),
        attributes=tuple({} for _ in skus),
    )
    return catalogue, rejected


def save_catalogue(catalogue: Catalogue, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CATALOGUE_FILE
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        images=catalogue.images,
        skus=np.array(catalogue.skus, dtype=str),
        category=np.array(catalogue.category, dtype=str),
        department=np.array(catalogue.department, dtype=str),
    )
    path.write_bytes(buffer.getvalue())
    return path


def load_catalogue(folder: Path) -> Catalogue:
    path = folder / CATALOGUE_FILE
    if not path.is_file():
        raise CatalogueError(f"{folder} holds no {CATALOGUE_FILE}")
    with np.load(path, allow_pickle=False) as data:
        n = len(data["skus"])
        return Catalogue(
            images=data["images"],
            skus=tuple(str(s) for s in data["skus"]),
            category=tuple(str(c) for c in data["category"]),
            department=tuple(str(d) for d in data["department"]),
            attributes=tuple({} for _ in range(n)),
        )


def save_split(manifest: SplitManifest, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPLIT_FILE
    path.write_text(json.dumps(manifest.to_json(), indent=2, sort_keys=True), encoding="utf-8")
    return path


def load_split(folder: Path) -> SplitManifest:
    path = folder / SPLIT_FILE
    if not path.is_file():
        raise CatalogueError(f"{folder} holds no {SPLIT_FILE}")
    return SplitManifest.from_json(json.loads(path.read_text(encoding="utf-8")))
