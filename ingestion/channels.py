"""The landing channels and the raw schema each one declares (docs/landing.md)."""

from dataclasses import dataclass

TEXT = "VARCHAR"
INT = "BIGINT"
FLOAT = "DOUBLE"


@dataclass(frozen=True)
class Channel:
    """One landing folder: how its files look and what its raw table holds."""

    folder: str
    table: str
    file_format: str  # "jsonl.gz", "csv" or "parquet"
    fields: dict[str, str]
    required: tuple[str, ...]

    @property
    def quarantine_table(self) -> str:
        return f"quarantine_{self.table}"

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
        ),
    )
}
