"""One dlt multi-asset per landing channel: its raw table and its quarantine table."""

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from dagster_dmp import settings
from dagster_dmp.assets.severity import failed_check_severity
from dagster_dmp.resources import WarehouseResource
from ingestion.channels import CHANNELS, Channel
from ingestion.lake import copy_to_lake
from ingestion.landing import DAMAGED, EMPTY, UNREADABLE
from ingestion.pipeline import RAW_DATASET, channel_pipeline
from ingestion.sources import channel_source, has_new_files
from ingestion.suppression import load_suppression


def _describe(source: str, table: str) -> str:
    channel = CHANNELS[source]
    if table == channel.quarantine_table:
        return (
            f"Records of landing channel `{source}` that failed validation, or loaded with a "
            "value that does not cast or is implausible: file, line, reason, original text."
        )
    if table == channel.files_table:
        return (
            f"Ledger of `{source}` landing files: fingerprint, loaded, empty, damaged or "
            "unreadable (with the reason), lines read and rejected, undeclared columns found "
            "(not loaded)."
        )
    return (
        f"Raw `{source}` records as sent, typed per docs/landing.md, one row per "
        f"{' + '.join(channel.natural_key)} ({channel.merge_strategy}), with source file and line."
    )


class RawTableTranslator(DagsterDltTranslator):
    """Key each dlt resource as `raw/<table>`, the key dbt's sources point at."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        return spec.replace_attributes(
            key=dg.AssetKey([RAW_DATASET, data.resource.name]),
            deps=[],
            group_name="ingestion",
            description=_describe(data.resource.source_name, data.resource.name),
        ).merge_attributes(kinds={"duckdb"})


def _channel_assets(channel: Channel) -> dg.AssetsDefinition:
    @dlt_assets(
        dlt_source=channel_source(channel, settings.landing_dir()),
        dlt_pipeline=channel_pipeline(channel, settings.duckdb_path()),
        name=f"ingest_{channel.folder}",
        dagster_dlt_translator=RawTableTranslator(),
    )
    def ingest(
        context: dg.AssetExecutionContext, dlt: DagsterDltResource, warehouse: WarehouseResource
    ):
        # A fresh source and pipeline per run: dlt objects cannot be reused across runs.
        pipeline = channel_pipeline(channel, warehouse.database, settings.ingest_duckdb_config())
        api_url = warehouse.api_urls.get(channel.folder)
        tables = [
            f"{RAW_DATASET}.{table}"
            for table in (channel.table, channel.quarantine_table, channel.files_table)
        ]
        counts = warehouse.row_counts(tables) if warehouse.database.exists() else {}
        # A first run, or a raw table dropped by hand: every landing file (re)loads, from an
        # empty source state (dlt's state alone would load nothing into a missing table).
        refresh = "drop_sources" if len(counts) < len(tables) else None
        # Nothing to load: dlt's extract, normalize and load of nothing took ~0.5 s a channel.
        # (On Spark the lake copy is remade every run.)
        if not (refresh or api_url or warehouse.on_spark) and not has_new_files(
            channel, warehouse.landing, pipeline
        ):
            yield from _unchanged(context, tables, counts)
            return
        # dlt reports its events once the whole load is done; add each table's row count.
        loaded = list(
            dlt.run(
                context=context,
                dlt_source=channel_source(
                    channel,
                    warehouse.landing,
                    api_url=api_url,
                    api_lookback=timedelta(hours=warehouse.api_lookback_hours),
                    suppression=load_suppression(warehouse.privacy),
                    duckdb_config=settings.ingest_duckdb_config(),
                ),
                dlt_pipeline=pipeline,
                dagster_dlt_translator=RawTableTranslator(),
                refresh=refresh,
            )
        )
        counts = warehouse.row_counts(".".join(event.asset_key.path) for event in loaded)
        # On Spark dbt reads the merged raw table from the lake: replace its copy there.
        lake = (
            copy_to_lake(channel, warehouse.database, warehouse.lake)
            if warehouse.on_spark
            else None
        )
        for event in loaded:
            metadata = {
                **event.metadata,
                "dagster/row_count": counts.get(".".join(event.asset_key.path), 0),
            }
            if lake and event.asset_key.path[-1] == channel.table:
                metadata["lake_path"] = dg.MetadataValue.path(str(lake))
            yield dg.MaterializeResult(asset_key=event.asset_key, metadata=metadata)

    return ingest


def _unchanged(
    context: dg.AssetExecutionContext, tables: list[str], counts: dict[str, int]
) -> Iterator[dg.MaterializeResult]:
    """The selected `tables` ("raw.<name>") as they stand, when no landing file changed."""
    for table in tables:
        key = dg.AssetKey(table.split("."))
        if key in context.selected_asset_keys:
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "dagster/row_count": counts[table],
                    "note": "no new or changed landing file: nothing loaded",
                },
            )


def _files_readable_check(channel: Channel) -> dg.AssetChecksDefinition:
    ledger, name = dg.AssetKey([RAW_DATASET, channel.files_table]), "landing_files_readable"

    @dg.asset_check(
        asset=ledger,
        name=name,
        description=(
            f"Every `{channel.folder}` landing file could be read to its end and held data: an "
            "unreadable, damaged (its readable part loaded) or empty file is named here, a "
            "warning unless DMP_BLOCKING_CHECKS names this check."
        ),
    )
    def files_readable(warehouse: WarehouseResource) -> dg.AssetCheckResult:
        with warehouse.connect(read_only=True) as con:
            problems = con.execute(
                f"select status, source_file, reason from {RAW_DATASET}.{channel.files_table} "
                f"where status in ('{UNREADABLE}', '{DAMAGED}', '{EMPTY}') "
                "order by status desc, source_file"
            ).fetchall()
        counts = {status: 0 for status in (UNREADABLE, DAMAGED, EMPTY)}
        for status, _, _ in problems:
            counts[status] += 1
        return dg.AssetCheckResult(
            passed=not problems,
            # Damaged input is reported, not a reason to stop: the rest of the run goes on.
            severity=failed_check_severity(ledger, name),
            description="; ".join(f"{name}: {reason}" for _, name, reason in problems) or None,
            metadata={f"{status}_files": count for status, count in counts.items()},
        )

    return files_readable


ingestion_assets = [_channel_assets(channel) for channel in CHANNELS.values()]
ingestion_checks = [_files_readable_check(channel) for channel in CHANNELS.values()]
