"""Hillstrom MineThatData e-mail test (hillstrom_email_campaign) -> CRM, touches, orders, visits.

The data has no ids and no dates, so both are made up by fixed, documented rules:
- ids from the row number n (1-based, file order): customer 'hs-<n>', login 'hs-user-<n>',
  cookie 'hs-cookie-<n>' (5 digits), so identity stitching has one person per row.
- the e-mail went out at SEND_TIME (the data says only "2008"; a Monday before the challenge
  was published on 2008-03-20); outcomes fall in the two weeks after it. Each customer's
  visit is at SEND_TIME + a uniform offset within the window and a purchase follows the visit
  by 1-60 minutes, both drawn from numpy's generator seeded with SEED, one draw per row.

Mapping:
- crm_customers: one per row; country 'US', consent_email 'true' (every customer was in the
  e-mailable population; the control arm was held out at random, not for lack of consent),
  updated_at = SEND_TIME. The profile columns are kept as extra columns under their source
  names (recency, history_segment, history, mens, womens, zip_code, newbie), with the
  past-year purchase `channel` renamed purchase_channel.
- campaign_touches: one per row, campaign CAMPAIGN_ID, channel 'email', variant = segment as
  sent ("Mens E-Mail", "Womens E-Mail", "No E-Mail"), touch_type 'sent' for the e-mail arms
  and 'holdout' for "No E-Mail" (assigned to the test but not mailed), so an A/B analysis
  finds every arm with its full size.
- orders: one line per converted customer: unit_price = spend (USD), quantity 1, product
  unknown (null), channel 'web', status 'completed', campaign_id CAMPAIGN_ID for every arm
  (the order is the test's measured outcome; the arm is on the touch).
- web_events: one 'page_view' of '/' per visiting customer (visit = 1), with cookie and
  login, without utm tags (the data does not say the visit came from the e-mail).
Nothing is set aside.
"""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.importers.landing_files import LandingWriter, query, read_source_csv

DATASET = "hillstrom"
CAMPAIGN_ID = "hillstrom-2008"
SEND_TIME = datetime(2008, 3, 3, 9, 0, tzinfo=UTC)
WINDOW_SECONDS = 14 * 86_400
LAST_VISIT_MARGIN_SECONDS = 3_600  # a visit's purchase still falls inside the window
SEED = 2008
CONTROL_SEGMENT = "No E-Mail"
SOURCE_COLUMNS = {
    "recency": pa.int64(),
    "history_segment": pa.string(),
    "history": pa.float64(),
    "mens": pa.int64(),
    "womens": pa.int64(),
    "zip_code": pa.string(),
    "newbie": pa.int64(),
    "channel": pa.string(),
    "segment": pa.string(),
    "visit": pa.int64(),
    "conversion": pa.int64(),
    "spend": pa.float64(),
}


def import_hillstrom(source: Path, out_dir: Path) -> dict:
    rows = _with_outcome_times(read_source_csv(source, SOURCE_COLUMNS))
    writer = LandingWriter(out_dir, "hillstrom")
    writer.write("crm_customers", _customers(rows))
    writer.write("campaign_touches", _touches(rows))
    writer.write("orders", _orders(rows))
    writer.write("web_events", _visits(rows))
    return writer.summary(
        DATASET,
        source,
        rows.num_rows,
        one_row_per_source_row=("crm_customers", "campaign_touches"),
        set_aside={},
    )


def _with_outcome_times(rows: pa.Table) -> pa.Table:
    """Add ids and the visit and purchase times, drawn once per row whatever its outcome."""
    rng = np.random.default_rng(SEED)
    visit_offset = rng.integers(0, WINDOW_SECONDS - LAST_VISIT_MARGIN_SECONDS, rows.num_rows)
    purchase_delay = rng.integers(60, 3_601, rows.num_rows)
    send = np.datetime64(SEND_TIME.replace(tzinfo=None), "s")
    visit_time = send + visit_offset.astype("timedelta64[s]")
    purchase_time = visit_time + purchase_delay.astype("timedelta64[s]")
    return (
        rows.append_column("visit_time", pa.array(_iso_utc(visit_time)))
        .append_column("purchase_time", pa.array(_iso_utc(purchase_time)))
        .append_column("serial", pc.utf8_lpad(pc.cast(rows["source_row"], pa.string()), 5, "0"))
    )


def _iso_utc(times: np.ndarray) -> np.ndarray:
    return np.char.add(np.datetime_as_string(times, unit="s"), "Z")


def _customers(rows: pa.Table) -> pa.Table:
    return query(
        {"rows": rows},
        f"""
        select
            'hs-' || serial as customer_id,
            'hs-user-' || serial as user_id,
            'US' as country,
            'true' as consent_email,
            '{_iso(SEND_TIME)}' as updated_at,
            recency,
            history_segment,
            history,
            mens,
            womens,
            zip_code,
            newbie,
            channel as purchase_channel
        from rows
        order by source_row
        """,
    )


def _touches(rows: pa.Table) -> pa.Table:
    return query(
        {"rows": rows},
        f"""
        select
            'hs-touch-' || serial as touch_id,
            '{CAMPAIGN_ID}' as campaign_id,
            segment as variant,
            'email' as channel,
            case when segment = '{CONTROL_SEGMENT}' then 'holdout' else 'sent' end as touch_type,
            '{_iso(SEND_TIME)}' as touch_time,
            'hs-' || serial as customer_id
        from rows
        order by source_row
        """,
    )


def _orders(rows: pa.Table) -> pa.Table:
    return query(
        {"rows": rows},
        f"""
        select
            'hs-order-' || serial as order_id,
            1 as line_number,
            purchase_time as order_time,
            'hs-' || serial as customer_id,
            'hs-user-' || serial as user_id,
            'web' as channel,
            'completed' as status,
            1 as quantity,
            spend as unit_price,
            'USD' as currency,
            '{CAMPAIGN_ID}' as campaign_id
        from rows
        where conversion = 1
        order by source_row
        """,
    )


def _visits(rows: pa.Table) -> pa.Table:
    return query(
        {"rows": rows},
        """
        select
            'hs-visit-' || serial as event_id,
            'page_view' as event_type,
            visit_time as event_time,
            'hs-cookie-' || serial as anonymous_id,
            'hs-user-' || serial as user_id,
            '/' as page_url
        from rows
        where visit = 1
        order by source_row
        """,
    )


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
