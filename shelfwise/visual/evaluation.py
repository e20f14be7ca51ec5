"""An embedding scored on both visual tasks for products it never saw, beside the baselines on the same queries: what
`shelfwise bench visual` prints and what the `visual` pipeline's gate reads.

Every method embeds the whole catalogue and one shopper photo of each product (`evaluation_photos`, drawn from a seed
of their own, never a training view), and is scored (`shelfwise.visual.retrieval`):
- similar products: each held-out product's catalogue image, and separately its photo, searches the catalogue minus
  that product; relevant means same category;
- find this product from a photo: a product's photo searches the whole catalogue; recall for the held-out SKUs'
  photos (the cold start) and, separately, the training SKUs'.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from shelfwise.visual.catalogue import Catalogue, SkuSplit, UInt8Array
from shelfwise.visual.retrieval import FloatArray, PhotoScores, SimilarScores

#: Evaluation's photos come from their own seed, apart from every training seed.
PHOTO_SEED_OFFSET = 1_000_003
LEARNED = "learned"
#: An embedding of (n, H, W, 3) uint8 images as (n, dim) unit vectors.
Embed = Callable[[UInt8Array], FloatArray]


@dataclass(frozen=True)
class MethodScores:
    """One method's scores on the held-out queries."""

    method: str
    dim: int
    similar: SimilarScores  # held-out catalogue images as queries
    similar_from_photo: SimilarScores  # held-out products' photos as queries
    photo_held_out: PhotoScores
    photo_trained: PhotoScores

    def figures(self) -> dict[str, float]:
        """The scores as flat named numbers (the evaluation document's and the registry's)."""
        return {
            "similar_precision_at_1": self.similar.precision_at_1,
            "similar_precision_at_10": self.similar.precision_at_10,
            "similar_map_at_10": self.similar.map_at_10,
            "similar_from_photo_precision_at_1": self.similar_from_photo.precision_at_1,
            "photo_recall_at_1": self.photo_held_out.recall_at_1,
            "photo_recall_at_10": self.photo_held_out.recall_at_10,
            "photo_recall_at_1_trained": self.photo_trained.recall_at_1,
        }


#: The figures the gate compares with the best baseline's. Not the clean-image similar precision@1: raw pixels find a
#: same-category product for every clean studio image of the world (1.000 against the learned 0.960, README), so a
#: gate on it would refuse every model; with a shopper photo as the query, which is what search gets, it is the
#: learned model's task (0.894 against 0.430).
GATED = ("photo_recall_at_1", "similar_from_photo_precision_at_1")


def evaluation_photos(catalogue: Catalogue, seed: int) -> UInt8Array:
    """One simulated shopper photo of every catalogue product, from the evaluation's own seed."""
    from shelfwise.visual.augment import shopper_photos

    photos: UInt8Array = shopper_photos(catalogue.images, np.random.default_rng(seed + PHOTO_SEED_OFFSET))
    return photos


def baseline_methods(side: int) -> list[tuple[str, Embed]]:
    """The baselines by name: raw pixels at full size and downscaled, and colour histograms."""
    from shelfwise.visual.baselines import colour_histograms, raw_pixels

    def full_pixels(images: UInt8Array) -> FloatArray:
        return raw_pixels(images, side)

    return [
        (f"pixels {side}x{side}", full_pixels),
        ("pixels downscaled", raw_pixels),
        ("RGB histogram 8^3", colour_histograms),
    ]


def score_method(method: str, embed: Embed, catalogue: Catalogue, split: SkuSplit, photos: UInt8Array) -> MethodScores:
    """Both tasks' scores of one embedding function."""
    from shelfwise.visual.retrieval import photo_scores, similar_product_scores

    vectors, photo_vectors = embed(catalogue.images), embed(photos)
    category = catalogue.category_codes
    return MethodScores(
        method=method,
        dim=int(vectors.shape[1]),
        similar=similar_product_scores(vectors, category, split.test),
        similar_from_photo=similar_product_scores(vectors, category, split.test, photo_vectors[split.test]),
        photo_held_out=photo_scores(photo_vectors[split.test], vectors, split.test),
        photo_trained=photo_scores(photo_vectors[split.train], vectors, split.train),
    )


def margins_over_baselines(learned: MethodScores, baselines: Sequence[MethodScores]) -> dict[str, float]:
    """For each gated figure, the learned model's value minus the best baseline's."""
    if not baselines:
        raise ValueError("margins need at least one baseline")
    return {name: learned.figures()[name] - max(b.figures()[name] for b in baselines) for name in GATED}
