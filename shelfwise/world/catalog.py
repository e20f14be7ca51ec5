"""The retailer's hierarchies: departments -> categories -> SKUs, and regions -> stores (incl. the online store)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shelfwise.world.arrays import BoolArray, FloatArray, IntArray
from shelfwise.world.calendar import ONLINE, REGIONS, STORE
from shelfwise.world.scales import ScaleSpec


@dataclass(frozen=True)
class CategorySpec:
    """How a category sells and looks. Sensitivities are exponents on the national holiday curves."""

    name: str
    department: str
    share: float  # share of the catalogue's SKUs
    price: float  # median base price
    elasticity: float  # log-log own-price elasticity
    weekly_strength: float  # 0 flat week, 1 the channel's typical weekend/weekday shape
    yearly_amplitude: float
    yearly_peak_day: int  # day of year of the seasonal peak
    black_friday: float
    christmas: float
    easter: float
    january: float
    promo_display: float  # uplift from display and advertising on top of the price cut
    post_promo_dip: float  # depth of the dip right after a promotion (pantry loading)
    extra_units: float  # mean units per order line beyond the first
    return_rate: float
    shape: str  # image silhouette
    texture: str  # image pattern
    hue: float  # image base hue (0..1)
    terms: tuple[str, ...]  # search words shoppers use
    volume: float  # units sold relative to an average SKU (staples turn over fastest)


CATEGORIES: tuple[CategorySpec, ...] = (
    CategorySpec("swimwear", "apparel", 0.06, 35, -2.0, 1.2, 1.3, 185, 0.5, 0.2, 0.3, 1.0, 1.25, 0.10, 0.1,
                 0.10, "swimsuit", "stripes", 0.55, ("swimsuit", "bikini", "swimwear"), 1.0),
    CategorySpec("outerwear", "apparel", 0.06, 120, -1.8, 1.2, 0.9, 335, 0.9, 0.9, 0.2, 1.0, 1.3, 0.10, 0.05,
                 0.09, "jacket", "plain", 0.08, ("jacket", "coat", "parka"), 0.6),
    CategorySpec("t-shirts", "apparel", 0.08, 18, -1.6, 1.2, 0.45, 170, 0.8, 0.8, 0.4, 1.0, 1.3, 0.10, 0.3,
                 0.08, "shirt", "stripes", 0.0, ("t-shirt", "tee", "top"), 1.3),
    CategorySpec("trousers", "apparel", 0.06, 55, -1.4, 1.1, 0.15, 270, 0.8, 0.7, 0.2, 1.0, 1.25, 0.10, 0.05,
                 0.09, "trousers", "plain", 0.62, ("trousers", "jeans", "chinos"), 0.9),
    CategorySpec("cleaning", "home", 0.07, 6, -0.7, 0.8, 0.12, 95, 0.2, 0.1, 0.2, 0.3, 1.2, 0.30, 0.4,
                 0.01, "bottle", "plain", 0.33, ("detergent", "cleaner", "spray"), 2.0),
    CategorySpec("kitchen", "home", 0.07, 30, -1.5, 0.9, 0.25, 345, 1.0, 1.0, 0.4, 1.0, 1.3, 0.10, 0.1,
                 0.03, "pan", "plain", 0.0, ("pan", "pot", "cookware"), 0.8),
    CategorySpec("bedding", "home", 0.06, 45, -1.3, 1.0, 0.2, 300, 0.9, 0.8, 0.3, 1.0, 1.3, 0.10, 0.1,
                 0.04, "pillow", "checks", 0.75, ("pillow", "duvet", "sheets"), 0.9),
    CategorySpec("toys", "toys & games", 0.08, 25, -2.2, 1.0, 0.55, 355, 1.0, 1.0, 0.6, 1.0, 1.4, 0.10, 0.1,
                 0.03, "ball", "dots", 0.15, ("toy", "ball", "plush"), 1.2),
    CategorySpec("board games", "toys & games", 0.06, 30, -1.9, 1.0, 0.45, 350, 1.0, 0.9, 0.3, 0.8, 1.35, 0.10,
                 0.05, 0.02, "box", "checks", 0.85, ("board game", "puzzle", "card game"), 0.8),
    CategorySpec("pantry staples", "grocery staples", 0.1, 4, -0.5, 0.6, 0.04, 60, 0.1, 0.05, 0.5, 0.1, 1.15,
                 0.35, 0.7, 0.005, "can", "plain", 0.1, ("pasta", "rice", "beans"), 3.0),
    CategorySpec("beverages", "grocery staples", 0.07, 3, -0.8, 0.7, 0.3, 200, 0.2, 0.3, 0.5, 0.2, 1.2, 0.30,
                 0.6, 0.005, "bottle", "stripes", 0.45, ("water", "soda", "juice"), 3.0),
    CategorySpec("garden", "seasonal & outdoor", 0.06, 40, -1.7, 1.1, 1.0, 130, 0.3, 0.1, 0.9, 0.8, 1.3, 0.10,
                 0.2, 0.03, "pot", "plain", 0.28, ("planter", "garden", "seeds"), 1.0),
    CategorySpec("barbecue", "seasonal & outdoor", 0.05, 80, -2.0, 1.2, 1.3, 190, 0.4, 0.1, 0.5, 0.8, 1.3, 0.10,
                 0.05, 0.04, "grill", "plain", 0.02, ("grill", "bbq", "charcoal"), 0.8),
    CategorySpec("christmas decor", "seasonal & outdoor", 0.05, 20, -2.5, 1.0, 2.2, 350, 0.8, 1.2, 0.0, 0.2, 1.4,
                 0.10, 0.4, 0.03, "tree", "dots", 0.36, ("christmas tree", "ornament", "lights"), 0.9),
    CategorySpec("electronics accessories", "electronics", 0.09, 25, -2.3, 0.9, 0.25, 345, 1.3, 1.1, 0.1, 1.0,
                 1.35, 0.10, 0.1, 0.06, "headphones", "plain", 0.67, ("headphones", "charger", "cable"), 1.2),
)  # fmt: skip

DEPARTMENTS: tuple[str, ...] = tuple(dict.fromkeys(c.department for c in CATEGORIES))
GENERAL_MERCHANDISE: tuple[str, ...] = tuple(d for d in DEPARTMENTS if d != "grocery staples")
BRANDS: dict[str, tuple[str, ...]] = {
    "apparel": ("Northwind", "Coastline", "Fjord & Co", "Shelfwise Basics"),
    "home": ("Hearth", "Brightline", "Shelfwise Home"),
    "toys & games": ("Playwell", "Tinker", "Meeple House"),
    "grocery staples": ("Pantry Pride", "Fresh Valley", "Shelfwise Basics"),
    "seasonal & outdoor": ("Greenfold", "Emberline", "Shelfwise Home"),
    "electronics": ("Voltix", "Sonora", "Linkpoint"),
}
FORMAT_SIZE = {"flagship": 2.0, "mall": 1.3, "neighborhood": 0.8, "outlet": 0.7}
#: Which departments each format carries, as a demand multiplier (0 = not stocked).
FORMAT_ASSORTMENT = {
    "flagship": {},
    "mall": {"grocery staples": 0.4},
    "neighborhood": {"apparel": 0.5, "grocery staples": 1.8, "electronics": 0.6},
    "outlet": {"grocery staples": 0.0, "seasonal & outdoor": 0.6, "electronics": 0.5, "apparel": 1.5},
    "online": {"grocery staples": 0.5, "electronics": 1.5},
}
_FORMAT_CYCLE = ("flagship", "neighborhood", "outlet", "mall", "neighborhood", "mall", "neighborhood")


@dataclass(frozen=True)
class Stores:
    """Store dimension; the online store is last."""

    ids: tuple[str, ...]
    region: IntArray  # index into `regions`; the online store's region is -1 ("national")
    regions: tuple[str, ...]
    formats: tuple[str, ...]
    channel: IntArray  # STORE or ONLINE
    size: FloatArray
    open_day: IntArray  # day index of opening (negative = before the history)

    @property
    def n(self) -> int:
        return len(self.ids)

    def region_name(self, store: int) -> str:
        return "national" if self.region[store] < 0 else self.regions[self.region[store]]


@dataclass(frozen=True)
class Products:
    """Product dimension, ordered by SKU id."""

    ids: tuple[str, ...]
    category: IntArray  # index into CATEGORIES
    brand: tuple[str, ...]
    base_price: FloatArray
    popularity: FloatArray  # relative demand level (lognormal: a long tail of slow movers)
    launch_day: IntArray  # day index (negative = launched before the history)
    end_day: IntArray  # last day on sale (index); n_days - 1 or later = still on sale

    @property
    def n(self) -> int:
        return len(self.ids)


def build_stores(spec: ScaleSpec, rng: np.random.Generator) -> Stores:
    regions = REGIONS[: spec.n_regions]
    n = spec.n_physical_stores
    formats = (*tuple(_FORMAT_CYCLE[i % len(_FORMAT_CYCLE)] for i in range(n)), "online")
    region = np.array([i % len(regions) for i in range(n)] + [-1], dtype=np.int64)
    size = np.array([FORMAT_SIZE[f] * rng.uniform(0.85, 1.15) for f in formats[:-1]] + [spec.online_size])
    open_day = -rng.integers(200, 6000, size=n + 1).astype(np.int64)
    # A few stores open during the history (about one in ten physical stores, never in tiny worlds).
    for k in range(n // 10):
        open_day[n - 1 - k] = int(spec.n_days * (k + 1) / (n // 10 + 1))
    channel = np.array([STORE] * n + [ONLINE], dtype=np.int64)
    ids = tuple(f"S{i + 1:03d}" for i in range(n + 1))
    return Stores(ids, region, regions, formats, channel, size, open_day)


def assortment(stores: Stores, products: Products) -> FloatArray:
    """(store, sku) demand multiplier of each store's range; 0 where a store does not stock the SKU."""
    dept_of_sku = [CATEGORIES[c].department for c in products.category]
    table = np.array([[FORMAT_ASSORTMENT[f].get(d, 1.0) for d in dept_of_sku] for f in stores.formats])
    return table.astype(np.float64)


def _category_counts(n_skus: int) -> IntArray:
    shares = np.array([c.share for c in CATEGORIES])
    counts = np.maximum(2, np.floor(shares / shares.sum() * n_skus)).astype(np.int64)
    order = np.argsort(-shares, kind="stable")
    i = 0
    while counts.sum() < n_skus:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > n_skus:
        j = order[i % len(order)]
        if counts[j] > 2:
            counts[j] -= 1
        i += 1
    result: IntArray = counts
    return result


def _lifecycles(n: int, n_days: int, rng: np.random.Generator) -> tuple[IntArray, IntArray]:
    """Launch and end days: a third launched during the history (every quarter), some discontinued."""
    launch = -rng.integers(30, 1500, size=n).astype(np.int64)
    new = rng.permutation(n)[: max(8, n // 3)]
    # Stratified launch days so that launches fall in every quarter even for a small catalogue.
    strata = (np.arange(len(new)) + rng.uniform(0.05, 0.95, size=len(new))) / len(new)
    launch[new] = np.floor(strata * (n_days - 60)).astype(np.int64)
    end = np.full(n, n_days + 365, dtype=np.int64)
    old = np.setdiff1d(np.arange(n), new)
    gone = rng.permutation(old)[: max(2, n // 8)]
    end[gone] = rng.integers(120, n_days - 30, size=len(gone))
    return launch, end


def build_products(spec: ScaleSpec, rng: np.random.Generator) -> Products:
    counts = _category_counts(spec.n_skus)
    category = np.repeat(np.arange(len(CATEGORIES), dtype=np.int64), counts)
    n = len(category)
    brands = tuple(str(rng.choice(BRANDS[CATEGORIES[c].department])) for c in category)
    medians = np.array([CATEGORIES[c].price for c in category])
    raw_price = medians * np.exp(rng.normal(0.0, 0.35, size=n))
    base_price = np.where(raw_price >= 5, np.round(raw_price) - 0.01, np.round(raw_price * 20) / 20)
    volume = np.array([CATEGORIES[c].volume for c in category])
    popularity = volume * np.exp(rng.normal(0.0, 1.0, size=n))
    launch, end = _lifecycles(n, spec.n_days, rng)
    ids = tuple(f"SKU{i + 1:05d}" for i in range(n))
    return Products(ids, category, brands, base_price.astype(np.float64), popularity, launch, end)


def lifecycle(products: Products, n_days: int) -> FloatArray:
    """(day, sku) demand multiplier: 0 off sale, ramping up over the first weeks after a launch (cold start)."""
    days = np.arange(n_days)[:, None]
    age = days - products.launch_day[None, :]
    ramp = 0.35 + 0.65 * (1 - np.exp(-np.maximum(age, 0) / 25.0))
    on_sale: BoolArray = (age >= 0) & (days <= products.end_day[None, :])
    return np.where(on_sale, ramp, 0.0)


def colour_name(hue: float) -> str:
    """The everyday name of a hue (0..1), for product attributes and search queries."""
    names = ((0.04, "red"), (0.11, "orange"), (0.18, "yellow"), (0.45, "green"), (0.53, "teal"), (0.7, "blue"),
             (0.8, "purple"), (0.95, "pink"), (1.01, "red"))  # fmt: skip
    for upper, name in names:
        if hue % 1.0 < upper:
            return name
    return "red"
