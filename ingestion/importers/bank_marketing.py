"""UCI Bank Marketing, bank-full (bank_marketing_uci) -> CRM, campaign touches, orders, product.

The file has month and day but no year. Its rows are in date order, May 2008 to Nov 2010
(SOURCE.md), so the year is FIRST_YEAR plus the number of times the month goes back
(e.g. dec -> jan) up to that row; the dates all come out valid.

Mapping (one customer per row: the data identifies no client across rows):
- crm_customers: customer_id 'bank-<n>' (row number, 5 digits), country 'PT', birth_year =
  contact year - age, updated_at = the contact date. job, marital, education, default,
  balance, housing and loan are kept as extra columns under their source names and values
  ('unknown' stays: it is the source's missing-value code and a cleaning test).
- campaign_touches: one per row, campaign CAMPAIGN_ID, touch_type 'sent' (an outbound
  contact made), channel = contact ('cellular' / 'telephone'; empty where 'unknown'), no
  variant (nothing was randomised), touch_time = the contact date at 00:00 UTC (no time of
  day is known). duration, campaign, pdays, previous and poutcome are extra columns as sent
  (pdays = -1 means "not contacted before"; duration is only known after the call).
- orders: one line per y = 'yes': product PRODUCT_ID, quantity 1, unit_price
  DEPOSIT_UNIT_PRICE EUR (a constant, so revenue counts subscriptions; balance is not a
  price), channel 'phone' (sold on the call), status 'completed', campaign_id CAMPAIGN_ID,
  order_time = the contact date.
- products: the one term-deposit product.
Nothing is set aside.
"""

from pathlib import Path

import pyarrow as pa

from ingestion.importers.landing_files import LandingWriter, query, read_source_csv

DATASET = "bank-marketing"
CAMPAIGN_ID = "bank-term-deposit"
PRODUCT_ID = "term_deposit"
DEPOSIT_UNIT_PRICE = 1.0
CURRENCY = "EUR"
FIRST_YEAR = 2008
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
SOURCE_COLUMNS = {
    "age": pa.int64(),
    "job": pa.string(),
    "marital": pa.string(),
    "education": pa.string(),
    "default": pa.string(),
    "balance": pa.int64(),
    "housing": pa.string(),
    "loan": pa.string(),
    "contact": pa.string(),
    "day": pa.int64(),
    "month": pa.string(),
    "duration": pa.int64(),
    "campaign": pa.int64(),
    "pdays": pa.int64(),
    "previous": pa.int64(),
    "poutcome": pa.string(),
    "y": pa.string(),
}


def import_bank_marketing(source: Path, out_dir: Path) -> dict:
    contacts = _dated(source, read_source_csv(source, SOURCE_COLUMNS, delimiter=";"))
    writer = LandingWriter(out_dir, "bank_marketing")
    writer.write("crm_customers", _customers(contacts))
    writer.write("campaign_touches", _touches(contacts))
    writer.write("orders", _orders(contacts))
    writer.write("products", _product())
    return writer.summary(
        DATASET,
        source,
        contacts.num_rows,
        one_row_per_source_row=("crm_customers", "campaign_touches"),
        set_aside={},
    )


def _dated(source: Path, rows: pa.Table) -> pa.Table:
    """Add `serial`, `contact_year` and `contact_date` (YYYY-MM-DD); reject impossible dates."""
    months = pa.table({"month": list(MONTHS), "month_number": range(1, 13)})
    dated = query(
        {"rows": rows, "months": months},
        f"""
        with numbered as (
            select rows.*, months.month_number
            from rows
            left join months using (month)
        ),
        wraps as (
            select
                *,
                coalesce(month_number < lag(month_number) over (order by source_row), false)
                    as new_year
            from numbered
        ),
        years as (
            select
                *,
                cast({FIRST_YEAR} + sum(new_year::int) over (order by source_row) as bigint)
                    as contact_year
            from wraps
        )
        select
            *,
            lpad(source_row::varchar, 5, '0') as serial,
            strftime(try(make_date(contact_year, month_number, day)), '%Y-%m-%d')
                as contact_date
        from years
        order by source_row
        """,
    )
    invalid = dated.filter(pa.compute.is_null(dated["contact_date"]))
    if invalid.num_rows:
        first = invalid.slice(0, 1).to_pylist()[0]
        raise ValueError(
            f"{source}: {invalid.num_rows} rows have no valid date, first at data row "
            f"{first['source_row']}: month={first['month']!r}, day={first['day']!r}"
        )
    return dated


def _customers(contacts: pa.Table) -> pa.Table:
    return query(
        {"contacts": contacts},
        """
        select
            'bank-' || serial as customer_id,
            contact_year - age as birth_year,
            'PT' as country,
            contact_date || ' 00:00:00' as updated_at,
            job,
            marital,
            education,
            "default",
            balance,
            housing,
            loan
        from contacts
        order by source_row
        """,
    )


def _touches(contacts: pa.Table) -> pa.Table:
    return query(
        {"contacts": contacts},
        f"""
        select
            'bank-touch-' || serial as touch_id,
            '{CAMPAIGN_ID}' as campaign_id,
            nullif(contact, 'unknown') as channel,
            'sent' as touch_type,
            contact_date || ' 00:00:00' as touch_time,
            'bank-' || serial as customer_id,
            duration,
            campaign,
            pdays,
            previous,
            poutcome
        from contacts
        order by source_row
        """,
    )


def _orders(contacts: pa.Table) -> pa.Table:
    return query(
        {"contacts": contacts},
        f"""
        select
            'bank-order-' || serial as order_id,
            1 as line_number,
            contact_date || ' 00:00:00' as order_time,
            'bank-' || serial as customer_id,
            'phone' as channel,
            'completed' as status,
            '{PRODUCT_ID}' as product_id,
            1 as quantity,
            {DEPOSIT_UNIT_PRICE} as unit_price,
            '{CURRENCY}' as currency,
            '{CAMPAIGN_ID}' as campaign_id
        from contacts
        where y = 'yes'
        order by source_row
        """,
    )


def _product() -> pa.Table:
    return pa.table(
        {
            "product_id": [PRODUCT_ID],
            "product_name": ["Term deposit"],
            "category": ["banking"],
            "price": [DEPOSIT_UNIT_PRICE],
            "currency": [CURRENCY],
        }
    )
