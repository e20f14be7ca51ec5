"""Shopper-photo augmentations: seeded, they change the image but keep its shape and range, and they replace the
studio background while keeping the product (details inside it included)."""

from __future__ import annotations

import numpy as np

from shelfwise.visual.augment import PhotoSettings, foreground_masks, shopper_photo, shopper_photos
from shelfwise.world.images import Style, render

STUDIO = np.array([242, 242, 240])


def _images(n: int = 6) -> np.ndarray:
    style = Style(0.3, 0.7, 0.8, 1.0, 0.0, 0.0, 0.6, 0.0, True, 0.0, 0.0)
    return np.stack([render(c, style) for c in range(n)])


def test_photos_are_seeded_and_differ_from_the_catalogue_image_in_shape_and_range_kept() -> None:
    images = _images()
    first = shopper_photos(images, np.random.default_rng(7))
    again = shopper_photos(images, np.random.default_rng(7))
    other = shopper_photos(images, np.random.default_rng(8))
    assert first.shape == images.shape
    assert first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    changed = np.abs(first.astype(int) - images).mean(axis=(1, 2, 3))
    assert (changed > 5).all()


def test_one_photo_is_the_batch_function_on_one_image() -> None:
    image = _images(1)[0]
    assert np.array_equal(
        shopper_photo(image, np.random.default_rng(3)), shopper_photos(image[None], np.random.default_rng(3))[0]
    )


def test_the_mask_covers_the_product_and_the_light_badge_inside_it_but_not_the_studio() -> None:
    style = Style(0.6, 0.8, 0.6, 1.0, 0.0, 0.0, 0.6, 0.0, True, 0.0, 0.0)
    image = render(7, style)  # a ball with a near-white badge in the middle
    mask = foreground_masks(image[None])[0]
    assert mask[32, 32]  # the badge
    assert np.abs(image[30:35, 30:35].astype(int) - STUDIO).max() < 24  # ... which is studio-coloured
    assert not mask[0, 0]
    assert not mask[2:-2, 2:5].any()
    assert 0.2 < mask.mean() < 0.5


def test_a_scene_replaces_the_studio_background_and_the_product_stays() -> None:
    settings = PhotoSettings(
        zoom=(1.0, 1.0), shift=0.0, rotation_degrees=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0,
        blur_sigma=(0.0, 0.0), noise=0.0, scene_probability=1.0, mirror=0.0,
    )  # fmt: skip
    images = _images(4)
    photos = shopper_photos(images, np.random.default_rng(0), settings)
    masks = foreground_masks(images)
    inner = masks & np.roll(masks, 1, 1) & np.roll(masks, -1, 1) & np.roll(masks, 1, 2) & np.roll(masks, -1, 2)
    assert np.abs(photos[inner].astype(int) - images[inner]).max() <= 2
    background = np.abs(photos[~masks].astype(int) - STUDIO).max(axis=1)
    assert (background > 24).mean() > 0.5
