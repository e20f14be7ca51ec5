"""The image embedding model: a small CNN trained from scratch that maps a product image to a unit vector, so that
cosine similarity finds both the same product in a shopper's photo and products of the same category.

The objective serves both tasks at once. Each step takes a batch of distinct training SKUs and pairs each SKU's studio
shot (slightly jittered) with a shopper photo of it (`shelfwise.visual.augment`), as search pairs them:
- an instance loss (NT-Xent, as in SimCLR) pulls a SKU's two views together and pushes every other SKU away: this is
  what finds a product from a photo;
- a category loss (cross-entropy of a cosine classifier on the embedding itself, as in NormFace) pulls a category's
  SKUs towards one direction: this is what makes neighbours similar products, and it carries over to SKUs the model
  never saw.

Input contract, which the serving side relies on: float32 NCHW RGB in [0, 1] of side `EmbeddingSettings.image_size`;
the network normalises its input itself (with the training images' channel means and deviations, stored in its
weights), and its output is L2-normalised. As in GluonTS, the settings are the estimator: `EmbeddingSettings.train`
returns an `EmbeddingModel`, the predictor, which `save`/`load` serialise as a state dict and the settings in JSON.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from shelfwise.visual.augment import PhotoSettings
from shelfwise.visual.catalogue import Catalogue

if TYPE_CHECKING:
    import torch
    from torch import nn

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
SETTINGS_FILE = "settings.json"
WEIGHTS_FILE = "model.pt"
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"
#: Called after each epoch with (epoch, epochs, mean loss of the epoch).
Progress = Callable[[int, int, float], None]


class InputContractError(ValueError):
    """Images that do not match the model's input contract: says which part (rank, channels, size, dtype, range)."""


@dataclass(frozen=True)
class EmbeddingSettings:
    """How to train an embedding model (the estimator)."""

    image_size: int = 64
    dim: int = 128
    width: int = 16  # channels of the first of the three stride-2 stages; doubled at each of the other two
    epochs: int = 90
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 5e-4
    temperature: float = 0.1  # of the instance loss
    category_scale: float = 16.0  # logit scale of the cosine classifier
    category_weight: float = 2.0  # of the category loss, beside the instance loss's 1
    seed: int = 0
    photo: PhotoSettings = field(default_factory=PhotoSettings)

    def __post_init__(self) -> None:
        for name in ("image_size", "dim", "width", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be at least 0 (0: the initialised, untrained model), got {self.epochs}")
        if self.image_size < 16:
            raise ValueError(f"image_size must be at least 16 (three downsamplings), got {self.image_size}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EmbeddingSettings:
        photo: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.get("photo", {}).items()}
        return cls(**{**data, "photo": PhotoSettings(**photo)})

    def train(self, catalogue: Catalogue, progress: Progress | None = None) -> EmbeddingModel:
        """A model trained on the catalogue's images and categories (deterministic on CPU for a seed)."""
        return _train(self, catalogue, progress)


def to_model_input(images: UInt8Array) -> FloatArray:
    """(n, H, W, 3) uint8 images -> the model's input, (n, 3, H, W) float32 in [0, 1]."""
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise InputContractError(f"expected (n, H, W, 3) uint8 images, got {images.shape} {images.dtype}")
    out: FloatArray = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)
    return out


def check_input(images: np.ndarray, image_size: int) -> None:
    """Raises `InputContractError` naming what is wrong unless `images` is float32 (n, 3, size, size) in [0, 1]."""
    if images.ndim != 4:
        raise InputContractError(f"images must be 4-D (n, 3, H, W), got shape {images.shape}")
    if images.shape[1] != 3:
        raise InputContractError(f"images must have 3 channels (RGB) on axis 1 (NCHW), got shape {images.shape}")
    if images.shape[2:] != (image_size, image_size):
        raise InputContractError(f"images must be {image_size}x{image_size}, got {images.shape[2]}x{images.shape[3]}")
    if images.dtype != np.float32:
        raise InputContractError(f"images must be float32, got {images.dtype}")
    if images.size and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
        raise InputContractError(f"pixel values must be in [0, 1], got {images.min():.3g}..{images.max():.3g}")


def _network(settings: EmbeddingSettings, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn

    def block(c_in: int, c_out: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    w = settings.width

    class EmbeddingNet(nn.Module):
        """Three stride-2 stages of two 3x3 convolutions, global average pooling, a linear map, L2 norm."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", mean.view(1, 3, 1, 1).clone())
            self.register_buffer("std", std.view(1, 3, 1, 1).clone())
            self.features = nn.Sequential(
                *block(3, w, 2), *block(w, w, 1), *block(w, 2 * w, 2), *block(2 * w, 2 * w, 1),
                *block(2 * w, 4 * w, 2), *block(4 * w, 4 * w, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            )  # fmt: skip
            self.project = nn.Linear(4 * w, settings.dim)

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            mean, std = self.get_buffer("mean"), self.get_buffer("std")
            features = self.features((images - mean) / std)
            return F.normalize(self.project(features), dim=1)

    torch.manual_seed(settings.seed)
    return EmbeddingNet()


@dataclass(frozen=True)
class EmbeddingModel:
    """A trained embedding (the predictor): `embed` maps the model input to (n, dim) unit vectors."""

    settings: EmbeddingSettings
    network: nn.Module
    categories: tuple[str, ...]
    losses: tuple[float, ...] = ()  # mean training loss per epoch

    def embed(self, images: np.ndarray, batch_size: int = 256) -> FloatArray:
        """(n, dim) float32 unit vectors of float32 NCHW images in [0, 1] (see the module's input contract)."""
        import torch

        check_input(images, self.settings.image_size)
        self.network.eval()
        with torch.inference_mode():
            parts = [
                self.network(torch.from_numpy(images[i : i + batch_size])).numpy()
                for i in range(0, len(images), batch_size)
            ]
        out: FloatArray = np.concatenate(parts) if parts else np.zeros((0, self.settings.dim), dtype=np.float32)
        return out

    def embed_images(self, images: UInt8Array) -> FloatArray:
        """Embeddings of (n, H, W, 3) uint8 images."""
        return self.embed(to_model_input(images))

    def save(self, directory: Path) -> Path:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.network.state_dict(), directory / WEIGHTS_FILE)
        meta = {
            "settings": self.settings.to_json(),
            "categories": list(self.categories),
            "losses": list(self.losses),
            "input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0]},
        }
        (directory / SETTINGS_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory

    @classmethod
    def load(cls, directory: Path) -> EmbeddingModel:
        import torch

        for name in (SETTINGS_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} holds no embedding model ({name} missing)")
        meta = json.loads((directory / SETTINGS_FILE).read_text())
        settings = EmbeddingSettings.from_json(meta["settings"])
        network = _network(settings, torch.zeros(3), torch.ones(3))
        network.load_state_dict(torch.load(directory / WEIGHTS_FILE, weights_only=True))
        network.eval()
        return cls(settings, network, tuple(meta["categories"]), tuple(meta["losses"]))


def export_onnx(model: EmbeddingModel, path: Path) -> Path:
    """The model as ONNX (input `images` float32 (batch, 3, size, size), output `embeddings` (batch, dim)), with a
    dynamic batch axis."""
    import torch

    size = model.settings.image_size
    path.parent.mkdir(parents=True, exist_ok=True)
    model.network.eval()
    with warnings.catch_warnings():
        # The TorchScript exporter: the torch.export one needs onnxscript, which nothing else here needs.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model.network,
            (torch.rand(2, 3, size, size),),
            str(path),
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
        )
    return path


def _nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each view's positive is the other view of its image, the 2B - 2 other views are negatives."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    views = torch.cat([first, second])
    n = first.shape[0]
    logits = views @ views.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(logits, targets)


def _train(settings: EmbeddingSettings, catalogue: Catalogue, progress: Progress | None) -> EmbeddingModel:
    import torch
    import torch.nn.functional as F  # noqa: N812

    from shelfwise.visual.augment import STUDIO, augment, foreground_masks

    if len(catalogue) < 2:
        raise ValueError(f"training needs at least 2 images, got {len(catalogue)}")
    check_input(to_model_input(catalogue.images[:1]), settings.image_size)
    images = torch.from_numpy(to_model_input(catalogue.images))
    masks = torch.from_numpy(foreground_masks(catalogue.images)).float()[:, None]
    labels = torch.from_numpy(catalogue.category_codes)
    network = _network(settings, images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3)).clamp(min=1e-3))
    # The cosine classifier's class directions, trained beside the network and dropped afterwards.
    centres = torch.nn.Parameter(F.normalize(torch.randn(len(catalogue.categories), settings.dim), dim=1))
    optimiser = torch.optim.AdamW([*network.parameters(), centres], lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(catalogue)
    batch = min(settings.batch_size, n)
    steps_per_epoch = math.ceil(n / batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.lr, total_steps=max(1, settings.epochs * steps_per_epoch), pct_start=0.15
    )
    generator = torch.Generator().manual_seed(settings.seed)
    losses: list[float] = []
    network.train()
    for epoch in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * batch : (step + 1) * batch]
            if rows.numel() < 2:  # a lone image has no negatives
                continue
            # A studio shot and a photo of each SKU, as search pairs them; the studio side is jittered only a little,
            # or the category loss learns the training images by heart.
            studio = augment(images[rows], masks[rows], generator, STUDIO)
            photos = augment(images[rows], masks[rows], generator, settings.photo)
            embedded = network(torch.cat([studio, photos]))
            first, second = embedded.split(rows.numel())
            classes = settings.category_scale * embedded @ F.normalize(centres, dim=1).T
            loss = _nt_xent(first, second, settings.temperature) + settings.category_weight * F.cross_entropy(
                classes, torch.cat([labels[rows], labels[rows]])
            )
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            schedule.step()
            total += float(loss.detach())
        losses.append(total / steps_per_epoch)
        if progress is not None:
            progress(epoch + 1, settings.epochs, losses[-1])
    network.eval()
    return EmbeddingModel(settings, network, catalogue.categories, tuple(losses))
