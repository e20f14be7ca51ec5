"""Procedural 64x64 RGB product images: the category decides silhouette, texture and palette, the SKU varies
colour, size, position and small details, so that images that look alike belong to the same category."""

from __future__ import annotations

import colorsys
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shelfwise.world.arrays import BoolArray, FloatArray, IntArray, UInt8Array
from shelfwise.world.catalog import CATEGORIES, Products, colour_name
from shelfwise.world.clickstream import COLOURS

SIZE = 64
_BACKGROUND = np.array([242.0, 242.0, 240.0])
_Y, _X = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


@dataclass(frozen=True)
class Style:
    """How one SKU's image varies from its category's template."""

    hue: float
    saturation: float
    value: float
    scale: float
    dx: float
    dy: float
    frequency: float
    phase: float
    badge: bool
    badge_x: float
    badge_y: float

    @property
    def colour(self) -> str:
        return colour_name(self.hue)


def draw_styles(products: Products, rng: np.random.Generator) -> tuple[Style, ...]:
    styles = []
    for c in products.category:
        spec = CATEGORIES[c]
        styles.append(
            Style(
                hue=float((spec.hue + rng.normal(0, 0.035)) % 1.0),
                saturation=float(rng.uniform(0.45, 0.85)),
                value=float(rng.uniform(0.55, 0.9)),
                scale=float(rng.uniform(0.9, 1.08)),
                dx=float(rng.uniform(-2, 2)),
                dy=float(rng.uniform(-2, 2)),
                frequency=float(rng.uniform(0.55, 0.75)),
                phase=float(rng.uniform(0, 2 * np.pi)),
                badge=bool(rng.random() < 0.6),
                badge_x=float(rng.uniform(-6, 6)),
                badge_y=float(rng.uniform(-4, 6)),
            )
        )
    return tuple(styles)


def colour_index(styles: tuple[Style, ...]) -> IntArray:
    return np.array([COLOURS.index(s.colour) for s in styles], dtype=np.int64)


def _rect(u: FloatArray, v: FloatArray, u0: float, u1: float, v0: float, v1: float) -> BoolArray:
    mask: BoolArray = (u >= u0) & (u < u1) & (v >= v0) & (v < v1)
    return mask


def _ellipse(u: FloatArray, v: FloatArray, cu: float, cv: float, ru: float, rv: float) -> BoolArray:
    mask: BoolArray = ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1.0
    return mask


def _shirt(u: FloatArray, v: FloatArray) -> BoolArray:
    body = _rect(u, v, -13, 13, -16, 22)
    sleeves = (np.abs(u) >= 13) & (np.abs(u) < 24) & (v >= -16) & (v < -2 - 0.5 * (np.abs(u) - 13))
    return (body | sleeves) & ~_ellipse(u, v, 0, -16, 5, 4)


def _jacket(u: FloatArray, v: FloatArray) -> BoolArray:
    body = _rect(u, v, -14, 14, -18, 24)
    sleeves = (np.abs(u) >= 14) & (np.abs(u) < 22) & (v >= -16 + 0.3 * (np.abs(u) - 14)) & (v < 22)
    zipper = np.abs(u) < 0.8
    return (body | sleeves) & ~_ellipse(u, v, 0, -18, 4, 5) & ~(zipper & (v > -12))


def _swimsuit(u: FloatArray, v: FloatArray) -> BoolArray:
    torso = _rect(u, v, -11, 11, -6, 18) & ~_ellipse(u, v, -11, 18, 6, 9) & ~_ellipse(u, v, 11, 18, 6, 9)
    straps: BoolArray = (np.abs(np.abs(u) - 7) < 1.5) & (v >= -20) & (v < -6)
    return torso | straps


def _trousers(u: FloatArray, v: FloatArray) -> BoolArray:
    waist = _rect(u, v, -14, 14, -24, -18)
    legs = (np.abs(u) < 14 + 0.1 * (v + 18)) & (np.abs(u) > 1.5 * (v > -10)) & (v >= -18) & (v < 26)
    return waist | legs


def _bottle(u: FloatArray, v: FloatArray) -> BoolArray:
    return _rect(u, v, -9, 9, -6, 24) | _ellipse(u, v, 0, -6, 9, 6) | _rect(u, v, -4, 4, -20, -6)


def _can(u: FloatArray, v: FloatArray) -> BoolArray:
    return _rect(u, v, -14, 14, -16, 18) | _ellipse(u, v, 0, -16, 14, 4) | _ellipse(u, v, 0, 18, 14, 4)


def _box(u: FloatArray, v: FloatArray) -> BoolArray:
    front = _rect(u, v, -20, 14, -10, 20)
    top = (v >= -18) & (v < -10) & (u >= -20 + (-10 - v)) & (u < 14 + (-10 - v) * 0.75)
    side = (u >= 14) & (u < 20) & (v >= -18 + (u - 14)) & (v < 20 - (u - 14))
    return front | top | side


def _ball(u: FloatArray, v: FloatArray) -> BoolArray:
    return _ellipse(u, v, 0, 0, 20, 20)


def _pan(u: FloatArray, v: FloatArray) -> BoolArray:
    return _ellipse(u, v, -7, 2, 17, 14) | _rect(u, v, 8, 30, -1, 4)


def _pillow(u: FloatArray, v: FloatArray) -> BoolArray:
    mask: BoolArray = (np.abs(u) / 25) ** 4 + (np.abs(v) / 17) ** 4 <= 1.0
    return mask


def _pot(u: FloatArray, v: FloatArray) -> BoolArray:
    pot = (v >= -6) & (v < 22) & (np.abs(u) < 15 - 0.2 * (v + 6))
    rim = _rect(u, v, -17, 17, -10, -5)
    leaves = _ellipse(u, v, -6, -18, 6, 9) | _ellipse(u, v, 6, -18, 6, 9)
    return pot | rim | leaves


def _grill(u: FloatArray, v: FloatArray) -> BoolArray:
    bowl = _ellipse(u, v, 0, -4, 20, 14) & (v >= -4)
    lid = _ellipse(u, v, 0, -6, 20, 12) & (v < -6)
    legs = (np.abs(np.abs(u) - 0.6 * (v - 8) - 6) < 1.6) & (v >= 8) & (v < 26)
    return bowl | lid | legs


def _tree(u: FloatArray, v: FloatArray) -> BoolArray:
    crown = (v >= -24) & (v < 14) & (np.abs(u) < (v + 24) * 0.55)
    return crown | _rect(u, v, -3, 3, 14, 22)


def _headphones(u: FloatArray, v: FloatArray) -> BoolArray:
    radius = np.hypot(u, v + 2)
    band = (radius >= 16) & (radius < 20) & (v < 0)
    cups = _ellipse(u, v, -17, 6, 6, 10) | _ellipse(u, v, 17, 6, 6, 10)
    return band | cups


_SHAPES: dict[str, Callable[[FloatArray, FloatArray], BoolArray]] = {
    "shirt": _shirt,
    "jacket": _jacket,
    "swimsuit": _swimsuit,
    "trousers": _trousers,
    "bottle": _bottle,
    "can": _can,
    "box": _box,
    "ball": _ball,
    "pan": _pan,
    "pillow": _pillow,
    "pot": _pot,
    "grill": _grill,
    "tree": _tree,
    "headphones": _headphones,
}


def _texture(name: str, u: FloatArray, v: FloatArray, style: Style) -> BoolArray:
    """Where the pattern's second colour shows."""
    f, p = style.frequency, style.phase
    if name == "stripes":
        mask: BoolArray = np.sin(v * f + p) > 0.3
    elif name == "dots":
        mask = (np.sin(u * f + p) * np.sin(v * f + p)) > 0.55
    elif name == "checks":
        mask = (np.sin(u * f * 0.8 + p) * np.sin(v * f * 0.8)) > 0
    else:
        mask = np.zeros_like(u, dtype=bool)
    return mask


def render(category: int, style: Style) -> UInt8Array:
    """The (64, 64, 3) image of one SKU."""
    spec = CATEGORIES[category]
    u = (_X - SIZE / 2 - style.dx) / style.scale
    v = (_Y - SIZE / 2 - style.dy) / style.scale
    shape = _SHAPES[spec.shape](u, v)
    main = np.array(colorsys.hsv_to_rgb(style.hue, style.saturation, style.value)) * 255
    second = np.array(colorsys.hsv_to_rgb(style.hue, style.saturation * 0.35, min(1.0, style.value + 0.3))) * 255
    shade = (1.0 - 0.004 * (v + 32))[..., None]  # light from above
    pattern = _texture(spec.texture, u, v, style)[..., None]
    product = np.where(pattern, second, main) * shade
    image = np.where(shape[..., None], product, _BACKGROUND)
    if style.badge:
        badge = _rect(u, v, style.badge_x - 2.5, style.badge_x + 2.5, style.badge_y - 2.5, style.badge_y + 2.5)
        image = np.where((badge & shape)[..., None], 250.0, image)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def png_bytes(pixels: UInt8Array) -> bytes:
    """PNG encoding with fixed settings (no timestamps), so the same pixels give the same bytes."""
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()
