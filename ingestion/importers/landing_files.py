"""What every importer shares: a strict source-CSV reader and byte-stable landing-file writers.

Landing files follow docs/landing.md: the channel's declared fields in declaration order
(CSV and Parquet carry every declared column, empty where the dataset has no value), then any
extra columns the dataset offers. Same input, same bytes: gzip without a timestamp, rows in a
fixed order, one Parquet row group.
"""

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingestion.channels import CHANNELS, FLOAT, INT, TEXT, Channel

ARROW_TYPES = {TEXT: pa.string(), INT: pa.int64(), FLOAT: pa.float64()}
GZIP_LEVEL = 6
SOURCE_ROW = "source_row"  # 1-based data-row number in the source file, for a stable order


def read_source_csv(
    path: Path,
    column_types: dict[str, pa.DataType],
    delimiter: str = ",",
    has_header: bool = True,
) -> pa.Table:
    """The listed columns, typed, plus `source_row`; only an empty field is null.

    A missing column or a value that does not parse raises ValueError naming the file, and
    for a bad value its data row and column, so bad input never lands half-imported.
    """
    try:
        table = _read_csv(path, column_types, delimiter, has_header)
    except (pa.ArrowException, OSError) as error:
        reason = _first_bad_value(path, column_types, delimiter, has_header) or error
        raise ValueError(f"cannot read source {path}: {reason}") from error
    return table.append_column(SOURCE_ROW, pa.array(np.arange(1, table.num_rows + 1)))


def _read_csv(
    path: Path, column_types: dict[str, pa.DataType], delimiter: str, has_header: bool
) -> pa.Table:
    return pacsv.read_csv(
        str(path),  # a str path lets pyarrow gunzip by the .gz extension
        read_options=pacsv.ReadOptions(column_names=None if has_header else list(column_types)),
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types,
            include_columns=list(column_types),
            # pyarrow's default null markers ("NA", "null", "nan", ...) would erase real text
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _first_bad_value(
    path: Path, column_types: dict[str, pa.DataType], delimiter: str, has_header: bool
) -> str | None:
    """Re-read as text to say which row and column hold the first value that does not parse."""
    try:
        text = _read_csv(path, dict.fromkeys(column_types, pa.string()), delimiter, has_header)
    except (pa.ArrowException, OSError):
        return None  # not a typing problem: pyarrow's own message says what is wrong
    text = text.append_column(SOURCE_ROW, pa.array(np.arange(1, text.num_rows + 1)))
    for name, kind in column_types.items():
        if kind == pa.string():
            continue
        sql_type = {pa.int64(): "bigint", pa.float64(): "double"}[kind]
        bad = query(
            {"text": text},
            f"""
            select {SOURCE_ROW}, "{name}" as value
            from text
            where "{name}" is not null and try_cast("{name}" as {sql_type}) is null
            order by {SOURCE_ROW}
            limit 1
            """,
        ).to_pylist()
        if bad:
            return (
                f"data row {bad[0][SOURCE_ROW]}, column {name}: {bad[0]['value']!r} is not {kind}"
            )
    return None


def query(tables: dict[str, pa.Table], sql: str) -> pa.Table:
    """Run one DuckDB query over Arrow tables registered under the given names."""
    con = duckdb.connect()
    for name, table in tables.items():
        con.register(name, table)
    result = con.sql(sql).to_arrow_table()
    con.close()
    return result


@dataclass
class LandingWriter:
    """Writes one dataset's file into each channel folder and remembers it for the summary."""

    out_dir: Path
    stem: str  # the file name (without extension) in every channel folder
    rows_written: dict[str, int] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def write(self, folder: str, table: pa.Table) -> None:
        channel = CHANNELS[folder]
        conformed = _conform(channel, table)
        path = Path(self.out_dir) / folder / f"{self.stem}.{channel.file_format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        _WRITERS[channel.file_format](path, conformed)
        self.rows_written[folder] = conformed.num_rows
        self.files[folder] = path.relative_to(self.out_dir).as_posix()

    def summary(
        self,
        dataset: str,
        source: Path,
        source_rows: int,
        one_row_per_source_row: tuple[str, ...],
        set_aside: dict[str, int],
    ) -> dict:
        """For each channel in `one_row_per_source_row`: source_rows = written + sum(set_aside)."""
        return {
            "dataset": dataset,
            "source": str(source),
            "source_rows": source_rows,
            "rows_written": dict(self.rows_written),
            "files": dict(self.files),
            "one_row_per_source_row": list(one_row_per_source_row),
            "set_aside": dict(set_aside),
        }


def _conform(channel: Channel, table: pa.Table) -> pa.Table:
    """Declared fields first, cast to their raw type; CSV/Parquet also get absent ones as null."""
    pad = channel.file_format != "jsonl.gz"  # JSON lines simply leave absent fields out
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name, kind in channel.fields.items():
        if name in table.column_names:
            columns[name] = table[name].cast(ARROW_TYPES[kind])
        elif pad:
            columns[name] = pa.nulls(table.num_rows, ARROW_TYPES[kind])
    for name in table.column_names:
        if name not in channel.fields:
            columns[name] = table[name]
    return pa.table(columns)


def _write_csv(path: Path, table: pa.Table) -> None:
    """Header row, '\\n' line ends, empty for null, integers as integers, quotes only where needed."""
    frame = table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)
    frame.to_csv(path, index=False, lineterminator="\n", na_rep="")


def _write_parquet(path: Path, table: pa.Table) -> None:
    """One row group per file keeps the layout independent of writer defaults."""
    pq.write_table(table, path, row_group_size=max(table.num_rows, 1), compression="snappy")


def _write_jsonl_gz(path: Path, table: pa.Table) -> None:
    """One compact JSON object per line, in the table's row order; gzip with mtime 0."""
    order = "_row_order"
    members = ", ".join(f'"{name}" := "{name}"' for name in table.column_names)
    lines = query(
        {"rows": table.append_column(order, pa.array(np.arange(table.num_rows)))},
        f'select to_json(struct_pack({members})) as line from rows order by "{order}"',
    )["line"].to_pylist()
    content = "".join(f"{line}\n" for line in lines).encode()
    path.write_bytes(gzip.compress(content, compresslevel=GZIP_LEVEL, mtime=0))


_WRITERS = {"csv": _write_csv, "parquet": _write_parquet, "jsonl.gz": _write_jsonl_gz}
