"""The shop's product catalogue: categories, brands with a price tier, a few hundred products."""

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from datagen.strings import numbered_ids

CATEGORIES = ("electronics", "fashion", "home", "beauty", "sports", "books", "toys", "grocery")
TIER_PRICE_FACTOR = np.array([0.55, 1.0, 2.1])  # price tiers 0 budget, 1 mid, 2 premium
CURRENCY = "EUR"

# Per category: (brand, tier) pairs and (product noun, typical mid-tier price).
BRANDS: dict[str, tuple[tuple[str, int], ...]] = {
    "electronics": (("Voltix", 0), ("Nordtek", 1), ("Lumina", 1), ("Aurion", 2), ("Kestrel", 2)),
    "fashion": (
        ("Basico", 0),
        ("Urban Loom", 1),
        ("Mira Mode", 1),
        ("Velour", 2),
        ("Atelier Noor", 2),
    ),
    "home": (
        ("Casa Easy", 0),
        ("Hearthly", 1),
        ("Nest & Co", 1),
        ("Maison Lune", 2),
        ("Oakhaus", 2),
    ),
    "beauty": (("Glowup", 0), ("Pure Petal", 1), ("Dermaline", 1), ("Lumiere", 2), ("Orchidee", 2)),
    "sports": (("Sprint", 0), ("Peakform", 1), ("Trailmark", 1), ("Altura", 2), ("Vortexa", 2)),
    "books": (
        ("Pocketpress", 0),
        ("Inkwell", 1),
        ("Brightpage", 1),
        ("Folio Prime", 2),
        ("Archivum", 2),
    ),
    "toys": (
        ("Playbox", 0),
        ("Tinker Tots", 1),
        ("Brickly", 1),
        ("Wonderkin", 2),
        ("Marvelcraft", 2),
    ),
    "grocery": (
        ("Daily Basket", 0),
        ("Farmfresh", 1),
        ("Green Acre", 1),
        ("Epicure", 2),
        ("Terroir", 2),
    ),
}
PRODUCT_NOUNS: dict[str, tuple[tuple[str, float], ...]] = {
    "electronics": (
        ("Headphones", 89),
        ("Smartphone", 499),
        ("Laptop", 899),
        ("Tablet", 349),
        ("Smartwatch", 229),
        ("Speaker", 119),
        ("Monitor", 259),
        ("Camera", 549),
    ),
    "fashion": (
        ("Jacket", 119),
        ("Sneakers", 89),
        ("Jeans", 69),
        ("Dress", 79),
        ("Sweater", 59),
        ("Handbag", 99),
        ("Scarf", 29),
        ("Boots", 129),
    ),
    "home": (
        ("Lamp", 49),
        ("Cushion", 24),
        ("Cookware Set", 129),
        ("Rug", 149),
        ("Coffee Maker", 99),
        ("Bedding Set", 79),
        ("Vase", 34),
        ("Vacuum", 249),
    ),
    "beauty": (
        ("Serum", 39),
        ("Moisturiser", 29),
        ("Perfume", 79),
        ("Lipstick", 19),
        ("Shampoo", 12),
        ("Face Mask", 15),
        ("Hair Dryer", 69),
        ("Palette", 35),
    ),
    "sports": (
        ("Running Shoes", 109),
        ("Yoga Mat", 29),
        ("Bike Helmet", 59),
        ("Dumbbells", 49),
        ("Tennis Racket", 89),
        ("Backpack", 69),
        ("Water Bottle", 19),
        ("Fitness Tracker", 99),
    ),
    "books": (
        ("Novel", 14),
        ("Cookbook", 24),
        ("Biography", 19),
        ("Travel Guide", 18),
        ("Comic", 12),
        ("Science Book", 22),
        ("Kids Book", 10),
        ("Art Book", 39),
    ),
    "toys": (
        ("Building Set", 49),
        ("Puzzle", 19),
        ("Doll", 29),
        ("Board Game", 34),
        ("RC Car", 59),
        ("Plush", 15),
        ("Science Kit", 39),
        ("Train Set", 79),
    ),
    "grocery": (
        ("Coffee Beans", 12),
        ("Olive Oil", 9),
        ("Tea Box", 7),
        ("Chocolate", 4),
        ("Pasta Pack", 3),
        ("Honey", 8),
        ("Granola", 5),
        ("Wine", 15),
    ),
}
SEARCH_TERMS: dict[str, tuple[str, ...]] = {
    "electronics": (
        "wireless headphones",
        "smartphone 5g",
        "gaming laptop",
        "4k monitor",
        "smartwatch",
    ),
    "fashion": ("winter jacket", "white sneakers", "slim jeans", "summer dress", "leather boots"),
    "home": ("desk lamp", "coffee maker", "cotton bedding", "wool rug", "cordless vacuum"),
    "beauty": ("vitamin c serum", "night cream", "perfume women", "matte lipstick", "hair dryer"),
    "sports": ("running shoes", "yoga mat", "bike helmet", "adjustable dumbbells", "tennis racket"),
    "books": (
        "bestseller novel",
        "vegan cookbook",
        "travel guide italy",
        "kids books",
        "graphic novel",
    ),
    "toys": ("building blocks", "puzzle 1000", "board game family", "rc car", "science kit"),
    "grocery": ("coffee beans", "olive oil", "green tea", "dark chocolate", "organic honey"),
}
PRODUCTS_PER_BRAND = len(PRODUCT_NOUNS["electronics"])
PRODUCTS_PER_CATEGORY = PRODUCTS_PER_BRAND * len(BRANDS["electronics"])


@dataclass(frozen=True)
class Catalogue:
    """Products laid out category-major: product k is in category k // PRODUCTS_PER_CATEGORY."""

    product_ids: pa.Array
    names: list[str]
    category: np.ndarray
    brand: np.ndarray  # index into the category's BRANDS
    tier: np.ndarray
    price: np.ndarray

    def __len__(self) -> int:
        return len(self.category)

    def table(self) -> pa.Table:
        """The catalogue as the shop exports it (products/*.csv)."""
        return pa.table(
            {
                "product_id": self.product_ids,
                "product_name": self.names,
                "category": [CATEGORIES[c] for c in self.category],
                "brand": [BRANDS[CATEGORIES[c]][b][0] for c, b in zip(self.category, self.brand)],
                "price": self.price,
                "currency": [CURRENCY] * len(self),
            }
        )


def build_catalogue(rng: np.random.Generator) -> Catalogue:
    """Every brand sells every product type of its category, priced by the brand's tier."""
    category, brand, noun = np.meshgrid(
        np.arange(len(CATEGORIES)),
        np.arange(len(BRANDS["electronics"])),
        np.arange(PRODUCTS_PER_BRAND),
        indexing="ij",
    )
    category, brand, noun = category.ravel(), brand.ravel(), noun.ravel()
    tier = np.array([BRANDS[CATEGORIES[c]][b][1] for c, b in zip(category, brand)])
    base = np.array([PRODUCT_NOUNS[CATEGORIES[c]][n][1] for c, n in zip(category, noun)])
    noise = rng.lognormal(0.0, 0.12, len(category))
    price = np.maximum(np.round(base * TIER_PRICE_FACTOR[tier] * noise) - 0.01, 0.99)
    models = rng.integers(1, 10, len(category))
    names = [
        f"{BRANDS[CATEGORIES[c]][b][0]} {PRODUCT_NOUNS[CATEGORIES[c]][n][0]} {'SXL'[t]}{m}"
        for c, b, n, t, m in zip(category, brand, noun, tier, models)
    ]
    return Catalogue(
        product_ids=numbered_ids("P", np.arange(1, len(category) + 1), 5),
        names=names,
        category=category,
        brand=brand,
        tier=tier,
        price=price,
    )
