"""Taobao UserBehavior subset (taobao_user_behavior_subset): events -> web events, products, orders.

Mapping:
- web_events: one event per source row, in file order. event_type pv -> product_view,
  cart -> add_to_cart, buy -> purchase, fav -> 'add_to_wishlist' (a new type, kept apart
  because a favourite is a stronger signal than a view and cannot be recovered once merged
  into product_view). event_time = the Unix seconds as ISO 8601 UTC (`...Z`), out-of-window
  timestamps kept. anonymous_id and user_id are both 'tb-<user_id>': the log is of logged-in
  users, so every event carries the login and the pipeline stitches cookie and user.
  product_id = 'tb-<item_id>' (bare item ids collide with Online Retail stock codes such as
  20658 when both datasets share a landing dir), category = category_id.
- event_id = 'tb-' + md5 of the row's five fields and its occurrence number among identical
  rows. The log has no ids and no re-delivery: each row is one recorded behaviour (SOURCE.md:
  no duplicate rows), so a repeated row would be a second behaviour in the same second and
  keeps its own id.
- products: one row per item, sorted; category = the category of the item's latest event (one
  item appears under two categories). No names or prices exist.
- orders: one line per buy event; buys of one user in the same second form one order
  'tb-<user_id>-<timestamp>', lines numbered in file order. quantity 1, channel 'web',
  status 'completed', user_id as on the events; the price is unknown, so unit_price and
  currency are null (ingestion loads nulls; revenue stays unknown rather than invented).
Rows whose behavior_type is not one of the four codes are set aside, counted by reason.
"""

from pathlib import Path

import pyarrow as pa

from ingestion.importers.landing_files import LandingWriter, query, read_source_csv

DATASET = "taobao"
SOURCE_COLUMNS = {  # the file has no header; column order as in SOURCE.md
    "user_id": pa.string(),
    "item_id": pa.string(),
    "category_id": pa.string(),
    "behavior_type": pa.string(),
    "timestamp": pa.int64(),
}
EVENT_TYPES = {
    "pv": "product_view",
    "cart": "add_to_cart",
    "fav": "add_to_wishlist",
    "buy": "purchase",
}
UNKNOWN_BEHAVIOR = f"behavior_type is not one of {', '.join(EVENT_TYPES)}"


def import_taobao(source: Path, out_dir: Path) -> dict:
    rows = read_source_csv(source, SOURCE_COLUMNS, has_header=False)
    mapping = pa.table(
        {"behavior_type": list(EVENT_TYPES), "event_type": list(EVENT_TYPES.values())}
    )
    events = query(
        {"rows": rows, "mapping": mapping},
        """
        select
            rows.*,
            mapping.event_type,
            'tb-' || rows.user_id as person,
            'tb-' || rows.item_id as product,
            strftime(make_timestamp(rows."timestamp" * 1000000), '%Y-%m-%dT%H:%M:%SZ')
                as event_time
        from rows
        join mapping using (behavior_type)
        order by source_row
        """,
    )
    writer = LandingWriter(out_dir, "taobao")
    writer.write("web_events", _web_events(events))
    writer.write("products", _products(events))
    writer.write("orders", _orders(events))
    set_aside = rows.num_rows - events.num_rows
    return writer.summary(
        DATASET,
        source,
        rows.num_rows,
        one_row_per_source_row=("web_events",),
        set_aside={UNKNOWN_BEHAVIOR: set_aside} if set_aside else {},
    )


def _web_events(events: pa.Table) -> pa.Table:
    return query(
        {"events": events},
        """
        select
            'tb-' || md5(
                concat_ws(',', user_id, item_id, category_id, behavior_type, "timestamp")
                || '#' || (row_number() over (
                    partition by user_id, item_id, category_id, behavior_type, "timestamp"
                    order by source_row
                ) - 1)
            ) as event_id,
            event_type,
            event_time,
            person as anonymous_id,
            person as user_id,
            product as product_id,
            category_id as category
        from events
        order by source_row
        """,
    )


def _products(events: pa.Table) -> pa.Table:
    return query(
        {"events": events},
        """
        select
            product as product_id,
            first(category_id order by "timestamp" desc, source_row desc) as category
        from events
        group by product
        order by product_id
        """,
    )


def _orders(events: pa.Table) -> pa.Table:
    return query(
        {"events": events},
        """
        select
            person || '-' || "timestamp" as order_id,
            row_number() over (partition by user_id, "timestamp" order by source_row)
                as line_number,
            event_time as order_time,
            person as user_id,
            'web' as channel,
            'completed' as status,
            product as product_id,
            1 as quantity
        from events
        where behavior_type = 'buy'
        order by source_row
        """,
    )
