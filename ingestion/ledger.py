"""The landing files that need a look: read from every channel's file ledger
(`raw.landing_files_<table>`, written by ingestion/landing.py), for the CLI and the report."""

from dataclasses import dataclass
from datetime import datetime

import duckdb

from ingestion.channels import CHANNELS
from ingestion.landing import LOADED
from ingestion.pipeline import RAW_DATASET


@dataclass(frozen=True)
class LandingProblem:
    """One landing file that was not read cleanly: its channel, status and why."""

    channel: str
    source_file: str
    status: str  # "unreadable", "damaged", "empty", or "loaded" with rejects / stray columns
    reason: str  # the ledger's reason, then rejected lines and undeclared columns, "; "-joined
    lines: int
    loaded_lines: int
    rejected_lines: int
    unexpected_columns: str | None
    read_at: datetime | None


def landing_problems(
    con: duckdb.DuckDBPyConnection, since: datetime | None = None, dataset: str = RAW_DATASET
) -> list[LandingProblem]:
    """Files whose status is not `loaded`, or that had rejected lines or undeclared columns,
    in channel and file order. Each ledger row is a file's latest read; with `since` only the
    files read at or after that time (e.g. the start of this run)."""
    present = {
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [dataset],
        ).fetchall()
    }
    selects = []
    for channel in CHANNELS.values():
        if channel.files_table not in present:
            continue  # a channel not loaded yet has no ledger
        columns = {
            name
            for (name,) in con.execute(
                "select column_name from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [dataset, channel.files_table],
            ).fetchall()
        }
        read_at = "read_at" if "read_at" in columns else "cast(null as timestamptz)"
        selects.append(
            f"select channel, source_file, status, reason, lines, loaded_lines, rejected_lines, "
            f"unexpected_columns, {read_at} as read_at "
            f'from "{dataset}"."{channel.files_table}"'
        )
    if not selects:
        return []
    rows = con.execute(
        f"""
        select * from ({" union all ".join(selects)})
        where (status <> $loaded or rejected_lines > 0 or unexpected_columns is not null)
            and ($since is null or read_at >= $since)
        order by channel, source_file
        """,
        {"loaded": LOADED, "since": since},
    ).fetchall()
    return [
        LandingProblem(
            channel=channel,
            source_file=source_file,
            status=status,
            reason=_reason(reason, rejected_lines, unexpected_columns),
            lines=lines,
            loaded_lines=loaded_lines,
            rejected_lines=rejected_lines,
            unexpected_columns=unexpected_columns,
            read_at=read_at,
        )
        for (
            channel,
            source_file,
            status,
            reason,
            lines,
            loaded_lines,
            rejected_lines,
            unexpected_columns,
            read_at,
        ) in rows
    ]


def _reason(reason: str | None, rejected_lines: int, unexpected_columns: str | None) -> str:
    parts = [reason] if reason else []
    if rejected_lines:
        parts.append(
            f"{rejected_lines} rejected line{'s' if rejected_lines != 1 else ''} in quarantine"
        )
    if unexpected_columns:
        parts.append(f"undeclared columns not loaded: {unexpected_columns}")
    return "; ".join(parts)
