"""The planted behaviour groups; segmentation and recommendation should find them again."""

from dataclasses import dataclass

import numpy as np

from datagen.catalogue import BRANDS, CATEGORIES, Catalogue


@dataclass(frozen=True)
class Persona:
    """How one group of persons behaves; rates are per person unless said otherwise."""

    name: str
    share: float  # of all persons
    interests: dict[str, float]  # category weights; missing categories get a small floor
    price_tiers: tuple[float, float, float]  # taste for budget, mid, premium brands
    visits_per_day: float
    browse_events: float  # mean page/product/search events per visit
    purchase_rate: float  # chance a visit ends in a purchase
    extra_lines: float  # mean order lines beyond the first
    discount_affinity: float  # share of order lines bought on discount
    app_share: float  # share of visits in the app, for persons with the app
    app_installs: tuple[float, float, float]  # chance of 0, 1, 2 app installs
    social_share: float  # chance of having a social handle
    social_per_day: float
    store_orders_per_month: float
    loyalty_tiers: tuple[float, float, float, float]  # chance of bronze, silver, gold, platinum


PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="bargain_hunter",
        share=0.24,
        interests={
            "grocery": 0.26,
            "home": 0.16,
            "toys": 0.16,
            "fashion": 0.12,
            "beauty": 0.1,
            "electronics": 0.08,
            "sports": 0.07,
            "books": 0.05,
        },
        price_tiers=(0.75, 0.22, 0.03),
        visits_per_day=0.20,
        browse_events=6.5,
        purchase_rate=0.08,
        extra_lines=1.6,
        discount_affinity=0.55,
        app_share=0.35,
        app_installs=(0.45, 0.45, 0.10),
        social_share=0.40,
        social_per_day=0.10,
        store_orders_per_month=0.4,
        loyalty_tiers=(0.55, 0.3, 0.12, 0.03),
    ),
    Persona(
        name="tech_enthusiast",
        share=0.16,
        interests={"electronics": 0.6, "books": 0.12, "sports": 0.1, "toys": 0.06},
        price_tiers=(0.08, 0.32, 0.60),
        visits_per_day=0.18,
        browse_events=7.0,
        purchase_rate=0.06,
        extra_lines=0.6,
        discount_affinity=0.10,
        app_share=0.60,
        app_installs=(0.15, 0.55, 0.30),
        social_share=0.45,
        social_per_day=0.15,
        store_orders_per_month=0.1,
        loyalty_tiers=(0.25, 0.35, 0.28, 0.12),
    ),
    Persona(
        name="fashion_lover",
        share=0.20,
        interests={"fashion": 0.52, "beauty": 0.28, "sports": 0.08, "home": 0.05},
        price_tiers=(0.15, 0.45, 0.40),
        visits_per_day=0.17,
        browse_events=7.5,
        purchase_rate=0.08,
        extra_lines=1.2,
        discount_affinity=0.25,
        app_share=0.55,
        app_installs=(0.30, 0.55, 0.15),
        social_share=0.80,
        social_per_day=0.40,
        store_orders_per_month=0.15,
        loyalty_tiers=(0.3, 0.35, 0.25, 0.1),
    ),
    Persona(
        name="home_maker",
        share=0.20,
        interests={"home": 0.42, "grocery": 0.22, "toys": 0.14, "books": 0.08, "beauty": 0.06},
        price_tiers=(0.30, 0.55, 0.15),
        visits_per_day=0.13,
        browse_events=5.5,
        purchase_rate=0.08,
        extra_lines=1.8,
        discount_affinity=0.30,
        app_share=0.35,
        app_installs=(0.40, 0.50, 0.10),
        social_share=0.40,
        social_per_day=0.08,
        store_orders_per_month=0.6,
        loyalty_tiers=(0.35, 0.4, 0.2, 0.05),
    ),
    Persona(
        name="casual_browser",
        share=0.20,
        interests={category: 0.125 for category in CATEGORIES},
        price_tiers=(0.35, 0.5, 0.15),
        visits_per_day=0.06,
        browse_events=3.0,
        purchase_rate=0.02,
        extra_lines=0.3,
        discount_affinity=0.15,
        app_share=0.30,
        app_installs=(0.65, 0.30, 0.05),
        social_share=0.30,
        social_per_day=0.05,
        store_orders_per_month=0.1,
        loyalty_tiers=(0.75, 0.2, 0.05, 0.0),
    ),
)
PERSONA_NAMES = tuple(persona.name for persona in PERSONAS)
CATEGORY_FLOOR = 0.015


def interest_matrix() -> np.ndarray:
    """(personas, categories) category weights, each row summing to 1."""
    weights = np.array(
        [
            [persona.interests.get(category, CATEGORY_FLOOR) for category in CATEGORIES]
            for persona in PERSONAS
        ]
    )
    return weights / weights.sum(axis=1, keepdims=True)


def product_preferences(catalogue: Catalogue, rng: np.random.Generator) -> np.ndarray:
    """(personas, categories, products per category) weights for picking a product in a category.

    A persona favours its price tier and one brand per category (drawn once per seed), which
    gives the recommender a brand signal on top of the category one.
    """
    n_brands = len(BRANDS[CATEGORIES[0]])
    tier = catalogue.tier.reshape(len(CATEGORIES), -1)
    brand = catalogue.brand.reshape(len(CATEGORIES), -1)
    favourite = rng.integers(0, n_brands, (len(PERSONAS), len(CATEGORIES)))
    product_appeal = rng.lognormal(0.0, 0.5, tier.shape)  # some products are simply more popular
    weights = np.empty((len(PERSONAS), *tier.shape))
    for p, persona in enumerate(PERSONAS):
        tier_weight = np.array(persona.price_tiers)[tier]
        brand_boost = np.where(brand == favourite[p][:, None], 3.0, 1.0)
        weights[p] = tier_weight * brand_boost * product_appeal
    return weights
