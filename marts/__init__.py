"""The marts Python reads: every one named here once, and one way to read one.

The dbt marts are the warehouse's interface: contracted (column names and types enforced),
documented and tested. ML, audiences, exports and serving read them, never the raw, staging or
intermediate relations behind them (tests/test_marts_interface.py greps for such reads), so a
model below the marts can change without breaking a consumer. dbt_project/models/exposures.yml
lists which marts each consumer reads.

Built on Spark (DMP_ENGINE=spark), the marts are Parquet tables in Spark's warehouse folder;
`attach_parquet_marts` makes each one a view in the DuckDB warehouse, so every consumer reads
them as it reads DuckDB's own.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

SCHEMA = "marts"


@dataclass(frozen=True)
class Mart:
    """A dbt mart: `name` is its dbt model, `relation` the table Python reads."""

    name: str

    @property
    def relation(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def key_path(self) -> list[str]:
        """Its Dagster asset key's path (dagster-dbt keys a model by schema and name)."""
        return [SCHEMA, self.name]

    def __str__(self) -> str:
        return self.relation


# persons
PERSON_PROFILES = Mart("person_profiles")
PERSON_IDENTIFIERS = Mart("person_identifiers")
PERSON_INTERESTS = Mart("person_interests")
PERSON_BEHAVIOUR = Mart("person_behaviour")
PERSON_EVENTS = Mart("person_events")
PERSON_ORDERS = Mart("person_orders")
PERSON_PRODUCT_INTERACTIONS = Mart("person_product_interactions")
# products
PRODUCTS = Mart("products")
# campaigns
CAMPAIGN_PERFORMANCE = Mart("campaign_performance")
CAMPAIGN_REACH = Mart("campaign_reach")
CAMPAIGN_ORDERS = Mart("campaign_orders")
EXPERIMENT_OBSERVATIONS = Mart("experiment_observations")
# the data's "today"
DATA_AS_OF = Mart("data_as_of")


class Connection(Protocol):
    def execute(self, query: str, parameters: Any = ...) -> Any: ...


def select_mart(
    mart: Mart,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] = (),
    where: str = "",
) -> str:
    """The query that reads `columns` (default: all) of the mart's rows that satisfy `where`
    (default: all), in `order_by` order (default: the mart's own row order)."""
    query = f"select {', '.join(columns) if columns else '*'} from {mart.relation}"
    query = f"{query} where {where}" if where else query
    return f"{query} order by {', '.join(order_by)}" if order_by else query


def read_mart(
    connection: Connection,
    mart: Mart,
    columns: Sequence[str] | None = None,
    order_by: Sequence[str] = (),
    where: str = "",
) -> pd.DataFrame:
    """The mart (or its `columns`, or its rows that satisfy `where`) as a data frame."""
    return connection.execute(select_mart(mart, columns, order_by, where)).df()


def attach_parquet_marts(connection: Connection, spark_warehouse: Path) -> list[str]:
    """Point `marts.<name>` at the Parquet files of each mart Spark built under
    `spark_warehouse` (`marts.db/<name>/`), replacing what the name held (a table from an
    earlier DuckDB build, an older view). Returns the relations attached."""
    folders = sorted(
        folder for folder in (Path(spark_warehouse) / f"{SCHEMA}.db").glob("*") if folder.is_dir()
    )
    if not folders:
        raise FileNotFoundError(f"no marts built by Spark under {spark_warehouse}/{SCHEMA}.db")
    connection.execute("begin")
    connection.execute(f"create schema if not exists {SCHEMA}")
    tables = {
        name
        for (name,) in connection.execute(
            "select table_name from duckdb_tables() where schema_name = ?", [SCHEMA]
        ).fetchall()
    }
    for folder in folders:
        relation = Mart(folder.name).relation
        files = "read_parquet('{}')".format(str(folder / "**" / "*.parquet").replace("'", "''"))
        if folder.name in tables:
            connection.execute(f"drop table {relation}")
        columns = connection.execute(f"describe select * from {files}").fetchall()
        connection.execute(
            f"create or replace view {relation} as select "
            f"{', '.join(_as_duckdb_builds_it(name, kind) for name, kind, *_ in columns)} "
            f"from {files}"
        )
    connection.execute("commit")
    return [Mart(folder.name).relation for folder in folders]


def _as_duckdb_builds_it(column: str, kind: str) -> str:
    """Spark's timestamps are instants (Parquet's UTC-adjusted type, read as `timestamp with
    time zone`); DuckDB's build keeps them as UTC wall time without a zone: the same values
    in the same type, whatever the reader's time zone."""
    quoted = '"{}"'.format(column.replace('"', '""'))
    if kind == "TIMESTAMP WITH TIME ZONE":
        return f"timezone('UTC', {quoted}) as {quoted}"
    return quoted
