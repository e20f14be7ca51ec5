"""The synthetic retail world: a seeded, reproducible retailer with the effects real retail data has.

`generate_world(scale, seed, out_dir)` writes a world folder as `docs/contracts.md` describes.
"""

from shelfwise.world.generate import GENERATOR_VERSION, WorldSummary, generate_world
from shelfwise.world.scales import SCALES, ScaleSpec, scale_spec

__all__ = ["GENERATOR_VERSION", "SCALES", "ScaleSpec", "WorldSummary", "generate_world", "scale_spec"]
