"""The landing channels and the raw schema each one declares (docs/landing.md)."""

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

TEXT = "VARCHAR"
INT = "BIGINT"
FLOAT = "DOUBLE"


# How a record that arrives again with the same natural key is treated:
# events are facts, so the first arrival stays ("insert-only": a re-send changes nothing);
# state-like records (orders, catalogue, ad-network days) take the newest version ("upsert").
INSERT_ONLY = "insert-only"
UPSERT = "upsert"

# A plausible timestamp text: ISO-like with a year from 2000 (the warehouse's
# `min_valid_time` in dbt_project.yml: no channel here holds older data, and an epoch 0 or a
# 1970 date is a default value, not a time) to next year, or epoch seconds / milliseconds
# from 2000-01-01 to before 2100. Anything else is loaded but also reported.
MIN_PLAUSIBLE_YEAR = 2000
_MIN_EPOCH_SECONDS = 946_684_800  # 2000-01-01T00:00:00Z
_MAX_EPOCH_SECONDS = 4_102_444_800  # 2100-01-01T00:00:00Z
# (strlen, a byte count, spares the regexes the ISO texts, which are all longer)
PLAUSIBLE_TIME = (
    "case"
    " when strlen({v}) in (12, 13) and regexp_full_match({v}, '[0-9]{{12,13}}')"
    " then cast({v} as bigint)"
    f" between {_MIN_EPOCH_SECONDS * 1000} and {_MAX_EPOCH_SECONDS * 1000 - 1}"
    " when strlen({v}) in (9, 10) and regexp_full_match({v}, '[0-9]{{9,10}}')"
    " then cast({v} as bigint)"
    f" between {_MIN_EPOCH_SECONDS} and {_MAX_EPOCH_SECONDS - 1}"
    " else coalesce(try_cast(left(trim({v}), 4) as integer)"
    f" between {MIN_PLAUSIBLE_YEAR} and year(current_date) + 1, false) end"
)


@dataclass(frozen=True)
class Channel:
    """One landing folder: how its files look, what its raw table holds, how records merge."""

    folder: str
    table: str
    file_format: str  # "jsonl.gz", "csv" or "parquet"
    fields: dict[str, str]
    required: tuple[str, ...]
    natural_key: tuple[str, ...]
    merge_strategy: str = INSERT_ONLY
    # field -> SQL predicate (with {v} for the typed value) that holds for a plausible value
    plausible: dict[str, str] = field(default_factory=dict)
    # the ISO time/date field an API pull of this channel pages forward on (None: files only)
    api_cursor: str | None = None
    # The schema is a contract: a column not in `fields` is reported, never loaded, unless
    # it is declared here. Extra fields are optional, loaded as text as sent, and checked
    # only for size and control characters (the importers' source columns, docs/landing.md).
    extra_fields: tuple[str, ...] = ()

    @property
    def quarantine_table(self) -> str:
        return f"quarantine_{self.table}"

    @property
    def files_table(self) -> str:
        return f"landing_files_{self.table}"

    @property
    def pattern(self) -> str:
        return f"*.{self.file_format}"


_EVENT_TIME = {"event_time": TEXT}

CHANNELS: dict[str, Channel] = {
    channel.folder: channel
    for channel in (
        Channel(
            folder="web_events",
            table="web_events",
            file_format="jsonl.gz",
            fields={
                "event_id": TEXT,
                "event_type": TEXT,
                **_EVENT_TIME,
                "anonymous_id": TEXT,
                "user_id": TEXT,
                "page_url": TEXT,
                "product_id": TEXT,
                "category": TEXT,
                "search_query": TEXT,
                "referrer": TEXT,
                "utm_source": TEXT,
                "utm_medium": TEXT,
                "utm_campaign": TEXT,
                "user_agent": TEXT,
            },
            required=("event_id", "event_type", "event_time", "anonymous_id"),
            natural_key=("event_id",),
            plausible={"event_time": PLAUSIBLE_TIME},
        ),
        Channel(
            folder="app_events",
            table="app_events",
            file_format="jsonl.gz",
            fields={
                "event_id": TEXT,
                "event_type": TEXT,
                **_EVENT_TIME,
                "device_id": TEXT,
                "user_id": TEXT,
                "platform": TEXT,
                "app_version": TEXT,
                "screen_name": TEXT,
                "product_id": TEXT,
                "category": TEXT,
            },
            required=("event_id", "event_type", "event_time", "device_id"),
            natural_key=("event_id",),
            plausible={"event_time": PLAUSIBLE_TIME},
        ),
        Channel(
            folder="social",
            table="social_engagements",
            file_format="jsonl.gz",
            fields={
                "engagement_id": TEXT,
                "network": TEXT,
                "handle": TEXT,
                "action": TEXT,
                **_EVENT_TIME,
                "post_id": TEXT,
                "campaign_id": TEXT,
                "category": TEXT,
            },
            required=("engagement_id", "handle", "event_time"),
            natural_key=("engagement_id",),
            plausible={"event_time": PLAUSIBLE_TIME},
        ),
        Channel(
            folder="ad_campaigns",
            table="ad_campaign_stats",
            file_format="csv",
            fields={
                "report_date": TEXT,
                "network": TEXT,
                "campaign_id": TEXT,
                "campaign_name": TEXT,
                "channel": TEXT,
                "variant": TEXT,
                "impressions": INT,
                "clicks": INT,
                "cost": FLOAT,
                "currency": TEXT,
            },
            required=("report_date", "campaign_id"),
            natural_key=("report_date", "network", "campaign_id", "variant"),
            merge_strategy=UPSERT,
            api_cursor="report_date",
            plausible={
                "impressions": "{v} >= 0",
                "clicks": "{v} >= 0",
                "cost": "{v} >= 0",
                "report_date": PLAUSIBLE_TIME,
            },
        ),
        Channel(
            folder="crm_customers",
            table="crm_customers",
            file_format="csv",
            fields={
                "customer_id": TEXT,
                "email": TEXT,
                "phone": TEXT,
                "user_id": TEXT,
                "social_handle": TEXT,
                "gender": TEXT,
                "birth_year": INT,
                "city": TEXT,
                "country": TEXT,
                "signup_date": TEXT,
                "consent_email": TEXT,
                "consent_ads": TEXT,
                "loyalty_tier": TEXT,
                "updated_at": TEXT,
            },
            required=("customer_id",),
            # Every version is kept (history); the newest per customer wins in dbt.
            natural_key=("customer_id", "updated_at"),
            api_cursor="updated_at",
            plausible={"birth_year": "{v} between 1900 and year(current_date)"},
            extra_fields=(
                # dmp import bank-marketing (ingestion/importers/bank_marketing.py)
                "job",
                "marital",
                "education",
                "default",
                "balance",
                "housing",
                "loan",
                # dmp import hillstrom (ingestion/importers/hillstrom.py)
                "recency",
                "history_segment",
                "history",
                "mens",
                "womens",
                "zip_code",
                "newbie",
                "purchase_channel",
            ),
        ),
        Channel(
            folder="orders",
            table="orders",
            file_format="parquet",
            fields={
                "order_id": TEXT,
                "line_number": INT,
                "order_time": TEXT,
                "customer_id": TEXT,
                "user_id": TEXT,
                "email": TEXT,
                "channel": TEXT,
                "status": TEXT,
                "product_id": TEXT,
                "quantity": INT,
                "unit_price": FLOAT,
                "currency": TEXT,
                "campaign_id": TEXT,
            },
            required=("order_id", "line_number", "order_time"),
            natural_key=("order_id", "line_number"),
            merge_strategy=UPSERT,
            plausible={
                "quantity": "{v} > 0",
                "unit_price": "{v} > 0",
                "order_time": PLAUSIBLE_TIME,
            },
        ),
        Channel(
            folder="products",
            table="products",
            file_format="csv",
            fields={
                "product_id": TEXT,
                "product_name": TEXT,
                "category": TEXT,
                "brand": TEXT,
                "price": FLOAT,
                "currency": TEXT,
            },
            required=("product_id",),
            natural_key=("product_id",),
            merge_strategy=UPSERT,
            plausible={"price": "{v} > 0"},
        ),
        Channel(
            folder="campaign_touches",
            table="campaign_touches",
            file_format="csv",
            fields={
                "touch_id": TEXT,
                "campaign_id": TEXT,
                "variant": TEXT,
                "channel": TEXT,
                "touch_type": TEXT,
                "touch_time": TEXT,
                "customer_id": TEXT,
                "anonymous_id": TEXT,
            },
            required=("touch_id", "campaign_id"),
            natural_key=("touch_id",),
            # dmp import bank-marketing (ingestion/importers/bank_marketing.py)
            extra_fields=("duration", "campaign", "pdays", "previous", "poutcome"),
        ),
    )
}


def landing_fingerprints(landing: Path) -> dict[str, str]:
    """Per channel folder: a hash of the name, size and modification time of every landing file
    the ingestion would read (folders without files are left out). The landing sensor and
    `dmp run` both tell new files by it."""
    fingerprints = {}
    for channel in CHANNELS.values():
        entries = sorted(
            f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
            for path in (landing / channel.folder).glob(channel.pattern)
            if path.is_file() and (stat := path.stat())
        )
        if entries:
            fingerprints[channel.folder] = hashlib.sha256("\n".join(entries).encode()).hexdigest()
    return fingerprints
