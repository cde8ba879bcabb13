"""What a person looks at and buys: a category by their interests, a product by their persona's taste."""

from dataclasses import dataclass

import numpy as np

from datagen.catalogue import CATEGORIES, PRODUCTS_PER_CATEGORY, Catalogue
from datagen.personas import product_preferences
from datagen.persons import Population
from datagen.streams import cumulative_weights, sample_rows


@dataclass(frozen=True)
class ProductChooser:
    """Draws categories and products for many persons at once."""

    interests_cdf: np.ndarray  # (persons, categories)
    preference_cdf: np.ndarray  # (personas x categories, products per category)
    persona: np.ndarray  # per person

    @classmethod
    def build(
        cls, population: Population, catalogue: Catalogue, rng: np.random.Generator
    ) -> "ProductChooser":
        preferences = product_preferences(catalogue, rng)
        return cls(
            interests_cdf=cumulative_weights(population.interests),
            preference_cdf=cumulative_weights(preferences.reshape(-1, PRODUCTS_PER_CATEGORY)),
            persona=population.persona,
        )

    def categories(self, person: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return sample_rows(self.interests_cdf, person, rng)

    def products(
        self, person: np.ndarray, category: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """Catalogue rows: a product of `category` that suits the person's persona."""
        block = self.persona[person] * len(CATEGORIES) + category
        return category * PRODUCTS_PER_CATEGORY + sample_rows(self.preference_cdf, block, rng)
