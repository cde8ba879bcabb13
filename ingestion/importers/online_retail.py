"""UCI Online Retail (online_retail_uci): invoice lines -> orders, CRM customers, products.

Mapping (the dirt is kept; staging and ingestion flag it, nothing is cleaned away here):
- orders: one line per invoice line, in file order. order_id = InvoiceNo, line_number = the
  line's position within its invoice in file order (so exact-duplicate rows stay two lines),
  order_time = InvoiceDate as given (`YYYY-MM-DD HH:MM:SS`; the shop's clock, read as UTC),
  customer_id = CustomerID (null for guest orders), channel 'web', status 'cancelled' for
  "C" invoices else 'completed' (the 3 "A" bad-debt adjustments too), product_id =
  StockCode as sent (case kept), quantity and unit_price as sent, currency GBP.
- crm_customers: one row per CustomerID, sorted: country, signup_date and updated_at from the
  customer's first invoice line (earliest InvoiceDate, then file order).
- products: one row per StockCode, sorted: product_name = the most frequent Description
  (ties: alphabetically first), price = median of the positive unit prices rounded to 4
  decimals (null if none; sub-penny prices stay positive), currency GBP, category by
  `product_category` below.
Nothing is set aside: every source line lands as an order line.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ingestion.importers.landing_files import LandingWriter, query, read_source_csv

DATASET = "online-retail"
SOURCE_COLUMNS = {
    "InvoiceNo": pa.string(),
    "StockCode": pa.string(),
    "Description": pa.string(),
    "Quantity": pa.int64(),
    "InvoiceDate": pa.string(),
    "UnitPrice": pa.float64(),
    "CustomerID": pa.string(),
    "Country": pa.string(),
}
# Stock codes that are fees, postage or adjustments, not goods (SOURCE.md, "non-product codes").
NON_PRODUCT_CODES = frozenset(
    {"AMAZONFEE", "B", "BANK CHARGES", "C2", "CRUK", "D", "DOT", "M", "m", "POST", "S"}
)
# Category rule: the first bucket with a keyword (a whole word, optional plural "S") in the
# upper-cased product name wins, so "CHRISTMAS MUG" is seasonal, not kitchen.
CATEGORY_KEYWORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("gift_voucher", ("VOUCHER",)),
    (
        "seasonal",
        ("CHRISTMAS", "XMAS", "ADVENT", "EASTER", "HALLOWEEN", "SANTA", "REINDEER", "SNOWMAN")
        + ("TINSEL",),
    ),
    (
        "jewellery",
        ("NECKLACE", "EARRING", "BRACELET", "RING", "CHARM", "DIAMANTE", "BEAD", "BROOCH")
        + ("BEADED", "PENDANT", "BANGLE", "HAIR", "JEWELLERY"),
    ),
    ("party", ("PARTY", "BIRTHDAY", "BALLOON", "BUNTING", "CONFETTI", "NAPKIN")),
    (
        "toys_games",
        ("TOY", "GAME", "DOLL", "DOLLY", "JIGSAW", "PUZZLE", "SPACEBOY", "CHILDRENS", "KIDS")
        + ("BABY", "TEDDY", "CRAYON", "PLAYHOUSE", "SKITTLES", "DOMINO", "DOMINOES"),
    ),
    (
        "lighting",
        ("CANDLE", "CANDLESTICK", "T-LIGHT", "TEALIGHT", "LANTERN", "LIGHT", "LAMP", "INCENSE"),
    ),
    (
        "kitchen_dining",
        ("MUG", "CUP", "SAUCER", "BOWL", "PLATE", "TEAPOT", "TEA", "CAKE", "CUTLERY", "JAR")
        + ("TRAY", "KITCHEN", "PANTRY", "LUNCH", "BOTTLE", "SPOON", "JUG", "COASTER", "BAKING")
        + ("RECIPE", "CHOPSTICK", "APRON", "OVEN", "TOWEL", "BEAKER", "CAKESTAND", "GLASS")
        + ("PLATTER", "DOILY", "FOOD", "PICNIC", "BISCUIT"),
    ),
    (
        "stationery",
        ("CARD", "PAPER", "WRAP", "NOTEBOOK", "PEN", "PENCIL", "STICKER", "ENVELOPE", "NOTEPAD")
        + ("RIBBON", "TAPE", "CALENDAR", "BOOK", "ERASER", "RULER", "STAMP", "TAG"),
    ),
    (
        "bags_storage",
        ("BAG", "BOX", "BOXES", "TIN", "STORAGE", "BASKET", "PURSE", "CASE", "HAMPER", "DRAWER")
        + ("CABINET", "CRATE", "WALLET", "TOTE", "SHOPPER", "WASHBAG"),
    ),
    ("garden", ("GARDEN", "PLANT", "PLANTER", "WATERING", "BIRD", "FEEDER", "HERB", "SEED")),
    (
        "home_decor",
        ("FRAME", "CLOCK", "MIRROR", "CUSHION", "SIGN", "DOORMAT", "HOOK", "GARLAND", "WALL")
        + ("DECORATION", "VASE", "ORNAMENT", "WREATH", "HOLDER", "PLAQUE", "TILE", "HANGING")
        + ("DOORSTOP", "THROW", "BLANKET", "CURTAIN", "HANGER", "MAGNET", "CHALKBOARD", "DOORSIGN")
        + ("FLOWER", "HEART", "ART", "FEATHER"),
    ),
)
NON_PRODUCT_CATEGORY = "non_product"
DEFAULT_CATEGORY = "other"


def import_online_retail(source: Path, out_dir: Path) -> dict:
    lines = read_source_csv(source, SOURCE_COLUMNS)
    writer = LandingWriter(out_dir, "online_retail")
    writer.write("orders", _order_lines(lines))
    writer.write("crm_customers", _customers(lines))
    writer.write("products", _products(lines))
    return writer.summary(
        DATASET, source, lines.num_rows, one_row_per_source_row=("orders",), set_aside={}
    )


def product_category(stock_codes: pd.Series, names: pd.Series) -> np.ndarray:
    """Non-product codes first, then the first matching keyword bucket, else 'other'."""
    upper = names.fillna("").str.upper()
    conditions = [stock_codes.isin(NON_PRODUCT_CODES).to_numpy()]
    for _, keywords in CATEGORY_KEYWORDS:
        pattern = r"\b(?:" + "|".join(keywords) + r")S?\b"
        conditions.append(upper.str.contains(pattern, regex=True).to_numpy())
    choices = [NON_PRODUCT_CATEGORY, *(category for category, _ in CATEGORY_KEYWORDS)]
    return np.select(conditions, choices, default=DEFAULT_CATEGORY)


def _order_lines(lines: pa.Table) -> pa.Table:
    return query(
        {"lines": lines},
        """
        select
            InvoiceNo as order_id,
            row_number() over (partition by InvoiceNo order by source_row) as line_number,
            InvoiceDate as order_time,
            CustomerID as customer_id,
            'web' as channel,
            case when starts_with(InvoiceNo, 'C') then 'cancelled' else 'completed' end as status,
            StockCode as product_id,
            Quantity as quantity,
            UnitPrice as unit_price,
            'GBP' as currency
        from lines
        order by source_row
        """,
    )


def _customers(lines: pa.Table) -> pa.Table:
    """InvoiceDate is ISO text (SOURCE.md), so its text order is its time order."""
    return query(
        {"lines": lines},
        """
        select
            CustomerID as customer_id,
            first(Country order by InvoiceDate, source_row) as country,
            left(min(InvoiceDate), 10) as signup_date,
            min(InvoiceDate) as updated_at
        from lines
        where CustomerID is not null
        group by CustomerID
        order by customer_id
        """,
    )


def _products(lines: pa.Table) -> pa.Table:
    products = query(
        {"lines": lines},
        """
        with name_counts as (
            select StockCode, Description, count(*) as uses
            from lines
            where Description is not null
            group by StockCode, Description
        ),
        names as (
            select StockCode, first(Description order by uses desc, Description) as product_name
            from name_counts
            group by StockCode
        ),
        prices as (
            select
                StockCode,
                round(median(UnitPrice) filter (where UnitPrice > 0), 4) as price
            from lines
            group by StockCode
        )
        select
            prices.StockCode as product_id,
            names.product_name,
            prices.price,
            'GBP' as currency
        from prices
        left join names on names.StockCode = prices.StockCode
        order by product_id
        """,
    )
    frame = products.to_pandas()
    category = product_category(frame["product_id"], frame["product_name"])
    return products.add_column(2, "category", pa.array(category, pa.string()))
