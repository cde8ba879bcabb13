"""The marketing calendar: paid ad campaigns and e-mail campaigns with A/B(/C) variants.

Windows are fractions of the period so every campaign fits whatever `days` is asked for.
"""

from dataclasses import dataclass

import numpy as np

from datagen.catalogue import CATEGORIES


@dataclass(frozen=True)
class Campaign:
    """One campaign; e-mail campaigns have variants with planted true conversion rates."""

    campaign_id: str
    name: str
    channel: str  # search, social, display, email
    network: str
    category: str
    window: tuple[float, float]  # share of the period: first day, end (e-mail: the send day)
    utm_source: str
    utm_medium: str
    referrer: str | None
    daily_budget_weight: float = 1.0  # relative share of paid landings while active
    variants: tuple[str, ...] = ()
    true_conversion_rates: tuple[float, ...] = ()

    @property
    def category_index(self) -> int:
        return CATEGORIES.index(self.category)

    @property
    def is_email(self) -> bool:
        return self.channel == "email"

    def active_days(self, days: int) -> tuple[int, int]:
        """[first, stop) day indices; at least one day, even for a very short period."""
        first = min(int(self.window[0] * days), days - 1)
        stop = max(first + 1, int(np.ceil(self.window[1] * days)))
        return first, min(stop, days)


CAMPAIGNS: tuple[Campaign, ...] = (
    Campaign(
        "cmp-001",
        "Autumn Tech Search",
        "search",
        "google_ads",
        "electronics",
        (0.0, 1.0),
        "google",
        "cpc",
        "www.google.com",
        1.4,
    ),
    Campaign(
        "cmp-002",
        "Fashion Week Search",
        "search",
        "google_ads",
        "fashion",
        (0.25, 1.0),
        "google",
        "cpc",
        "www.google.com",
        1.0,
    ),
    Campaign(
        "cmp-003",
        "Insta Style Drops",
        "social",
        "meta_ads",
        "fashion",
        (0.0, 0.6),
        "instagram",
        "paid_social",
        "l.instagram.com",
        1.2,
    ),
    Campaign(
        "cmp-004",
        "TikTok Toy Box",
        "social",
        "tiktok_ads",
        "toys",
        (0.4, 1.0),
        "tiktok",
        "paid_social",
        "www.tiktok.com",
        0.8,
    ),
    Campaign(
        "cmp-005",
        "Home Refresh Display",
        "display",
        "programmatic",
        "home",
        (0.1, 0.8),
        "programmatic",
        "display",
        "ads.adserver.example",
        0.9,
    ),
    Campaign(
        "cmp-006",
        "Newsletter Sports Deals",
        "email",
        "newsletter",
        "sports",
        (0.2, 0.2),
        "newsletter",
        "email",
        None,
        variants=("A", "B"),
        true_conversion_rates=(0.02, 0.03),
    ),
    Campaign(
        "cmp-007",
        "Newsletter Book Club",
        "email",
        "newsletter",
        "books",
        (0.45, 0.45),
        "newsletter",
        "email",
        None,
        variants=("A", "B"),
        true_conversion_rates=(0.04, 0.04),
    ),
    Campaign(
        "cmp-008",
        "Newsletter Beauty Week",
        "email",
        "newsletter",
        "beauty",
        (0.65, 0.65),
        "newsletter",
        "email",
        None,
        variants=("A", "B", "C"),
        true_conversion_rates=(0.03, 0.045, 0.02),
    ),
)
CAMPAIGN_IDS = tuple(campaign.campaign_id for campaign in CAMPAIGNS)
PAID = tuple(index for index, campaign in enumerate(CAMPAIGNS) if not campaign.is_email)
EMAIL = tuple(index for index, campaign in enumerate(CAMPAIGNS) if campaign.is_email)


def paid_activity(days: int) -> np.ndarray:
    """(days, paid campaigns) budget weight of each paid campaign on each day (0 when off)."""
    activity = np.zeros((days, len(PAID)))
    for column, index in enumerate(PAID):
        first, stop = CAMPAIGNS[index].active_days(days)
        activity[first:stop, column] = CAMPAIGNS[index].daily_budget_weight
    return activity
