"""Augmentations that turn a catalogue image into something like a shopper's photo of the product.

A photo differs from the studio shot in framing (zoom, crop, shift, rotation, mirroring), in what is behind the
product (a textured, cluttered scene instead of the light studio background), in light and colour (brightness,
contrast, saturation, a small hue cast) and in sharpness (blur, sensor noise). All of it is done in torch on whole
batches, with every random draw taken from one `torch.Generator`, so a seed gives the same photos.

The product is cut out of the studio background by `foreground_masks`: the background is the colour of the image's
border, and the product is everything not reachable from the border through background-coloured pixels (so light
details inside the product, such as a white badge, stay part of it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]

#: How far (max over channels, 0-255) a pixel may be from the border colour and still count as background.
BACKGROUND_TOLERANCE = 24
_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PhotoSettings:
    """How far a shopper photo strays from the catalogue image; each draw is uniform in the range given."""

    zoom: tuple[float, float] = (0.75, 1.3)  # above 1 crops into the product, below 1 shows more scene
    shift: float = 0.12  # of the image side, each axis
    rotation_degrees: float = 20.0
    # Light and colour shifts stay below the spread of colours within a category, or a photo could not tell a SKU
    # from its neighbours at all.
    brightness: float = 0.12  # multiplicative, 1 +- this
    contrast: float = 0.15
    saturation: float = 0.12
    hue: float = 0.01  # of the colour wheel
    blur_sigma: tuple[float, float] = (0.0, 1.2)  # pixels
    noise: float = 0.03  # standard deviation, at most
    scene_probability: float = 0.9  # otherwise the studio background stays
    clutter: int = 4  # rectangles of other things in the scene
    mirror: float = 0.5  # probability of a left-right flip (a front camera's photo is mirrored)


#: The small changes of a studio shot (framing, exposure), with no scene: the catalogue side of a training pair.
STUDIO = PhotoSettings(
    zoom=(0.9, 1.1), shift=0.05, rotation_degrees=5.0, brightness=0.05, contrast=0.05, saturation=0.05, hue=0.0,
    blur_sigma=(0.0, 0.5), noise=0.01, scene_probability=0.0, clutter=0, mirror=0.5,
)  # fmt: skip


def foreground_masks(images: UInt8Array) -> BoolArray:
    """(n, H, W) masks, True on the product, of (n, H, W, 3) uint8 images on a plain background."""
    from scipy.ndimage import binary_fill_holes

    border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], axis=1)
    colour = np.median(border, axis=1)
    far = np.abs(images.astype(np.int16) - colour[:, None, None, :]).max(axis=3) > BACKGROUND_TOLERANCE
    # Background-coloured pixels that the border cannot reach are holes in the product: part of it.
    return np.stack([binary_fill_holes(mask) for mask in far]).astype(bool)


def _uniform(low: float, high: float, n: int, generator: torch.Generator) -> torch.Tensor:
    import torch

    return low + (high - low) * torch.rand(n, generator=generator)


def _warp(images: torch.Tensor, settings: PhotoSettings, generator: torch.Generator) -> torch.Tensor:
    """The same random zoom, shift and rotation applied to every channel of each image (zeros outside)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    n = images.shape[0]
    zoom = _uniform(*settings.zoom, n, generator)
    angle = _uniform(-1.0, 1.0, n, generator) * math.radians(settings.rotation_degrees)
    shift = _uniform(-1.0, 1.0, 2 * n, generator).view(n, 2) * 2 * settings.shift
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # affine_grid maps output coordinates to input ones: the inverse of the camera's move.
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _scenes(n: int, height: int, width: int, settings: PhotoSettings, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, H, W) cluttered backgrounds: smooth colour gradients, a mid-frequency texture and a few
    rectangles of other things."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    size = (height, width)
    coarse = F.interpolate(torch.rand(n, 3, 3, 3, generator=generator), size=size, mode="bilinear")
    texture = F.interpolate(torch.rand(n, 3, 12, 12, generator=generator), size=size, mode="bilinear")
    scene = 0.75 * coarse + 0.25 * texture
    # Real scenes are mostly muted, some colourful.
    grey = scene.mean(dim=1, keepdim=True)
    scene = grey + (scene - grey) * _uniform(0.2, 1.0, n, generator).view(n, 1, 1, 1)
    ys = torch.linspace(0.0, 1.0, height).view(1, height, 1)
    xs = torch.linspace(0.0, 1.0, width).view(1, 1, width)
    for _ in range(settings.clutter):
        corner = torch.rand(n, 2, generator=generator)
        extent = 0.1 + 0.4 * torch.rand(n, 2, generator=generator)
        inside = (
            (ys >= corner[:, 0, None, None])
            & (ys < (corner[:, 0] + extent[:, 0])[:, None, None])
            & (xs >= corner[:, 1, None, None])
            & (xs < (corner[:, 1] + extent[:, 1])[:, None, None])
        )
        colour = torch.rand(n, 3, 1, 1, generator=generator)
        scene = torch.where(inside[:, None], colour, scene)
    return scene


def _light(images: torch.Tensor, settings: PhotoSettings, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation and a hue cast (a rotation of the chroma plane in YIQ space)."""
    import torch

    n = images.shape[0]
    luma = torch.tensor(_LUMA).view(1, 3, 1, 1)
    grey = (images * luma).sum(dim=1, keepdim=True)
    saturation = _uniform(1 - settings.saturation, 1 + settings.saturation, n, generator).view(n, 1, 1, 1)
    images = grey + (images - grey) * saturation
    angle = _uniform(-1.0, 1.0, n, generator) * 2 * math.pi * settings.hue
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rotation = torch.zeros(n, 3, 3)
    rotation[:, 0, 0] = 1.0
    rotation[:, 1, 1], rotation[:, 1, 2] = torch.cos(angle), -torch.sin(angle)
    rotation[:, 2, 1], rotation[:, 2, 2] = torch.sin(angle), torch.cos(angle)
    transform = torch.linalg.inv(to_yiq) @ rotation @ to_yiq
    images = torch.bmm(transform, images.flatten(2)).view(images.shape)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(1 - settings.contrast, 1 + settings.contrast, n, generator).view(n, 1, 1, 1)
    brightness = _uniform(1 - settings.brightness, 1 + settings.brightness, n, generator).view(n, 1, 1, 1)
    return ((images - mean) * contrast + mean) * brightness


def _blur(images: torch.Tensor, settings: PhotoSettings, generator: torch.Generator) -> torch.Tensor:
    """A Gaussian blur of a random sigma per image (separable, 5 taps)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    n, channels, height, width = images.shape
    sigma = _uniform(*settings.blur_sigma, n, generator).clamp(min=1e-3)
    taps = torch.arange(-2.0, 3.0)
    kernel = torch.exp(-(taps[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)
    flat = images.reshape(1, n * channels, height, width)
    flat = F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), kernel.view(-1, 1, 1, 5), groups=n * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, 2, 2), mode="replicate"), kernel.view(-1, 1, 5, 1), groups=n * channels)
    return flat.view(n, channels, height, width)


def augment(
    images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, settings: PhotoSettings = PhotoSettings()
) -> torch.Tensor:
    """Shopper-photo versions of (B, 3, H, W) float images in [0, 1] whose products `masks` (B, 1, H, W) cut out;
    the result has the same shape, in [0, 1]."""
    import torch

    n, _, height, width = images.shape
    mirrored = (torch.rand(n, generator=generator) < settings.mirror).view(n, 1, 1, 1)
    images, masks = torch.where(mirrored, images.flip(3), images), torch.where(mirrored, masks.flip(3), masks)
    warped = _warp(torch.cat([images * masks, masks], dim=1), settings, generator)
    product, mask = warped[:, :3], warped[:, 3:]
    studio = images[:, :, :1, :1].expand(-1, -1, height, width)
    use_scene = (torch.rand(n, generator=generator) < settings.scene_probability).view(n, 1, 1, 1)
    background = torch.where(use_scene, _scenes(n, height, width, settings, generator), studio)
    photo = _light(product + (1 - mask) * background, settings, generator)
    photo = _blur(photo.clamp(0.0, 1.0), settings, generator)
    noise = torch.randn(photo.shape, generator=generator) * _uniform(0.0, settings.noise, n, generator).view(n, 1, 1, 1)
    return (photo + noise).clamp(0.0, 1.0)


def shopper_photos(
    images: UInt8Array, rng: np.random.Generator, settings: PhotoSettings = PhotoSettings()
) -> UInt8Array:
    """Shopper photos (n, H, W, 3) uint8 of catalogue images (n, H, W, 3) uint8; the same `rng` state gives the same
    photos. Evaluation draws its own rng, so its photos are never the views the model trained on."""
    import torch

    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (n, H, W, 3) uint8, got {images.shape} {images.dtype}")
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    batch = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(foreground_masks(images)).float()[:, None]
    photos = augment(batch, masks, generator, settings)
    out: UInt8Array = (photos * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def shopper_photo(image: UInt8Array, rng: np.random.Generator, settings: PhotoSettings = PhotoSettings()) -> UInt8Array:
    """One shopper photo (H, W, 3) uint8 of one catalogue image (H, W, 3) uint8."""
    photo: UInt8Array = shopper_photos(image[None], rng, settings)[0]
    return photo
