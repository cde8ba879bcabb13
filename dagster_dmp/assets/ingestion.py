"""One dlt multi-asset per landing channel: its raw table and its quarantine table."""

import dagster as dg
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData

from dagster_dmp import settings
from dagster_dmp.resources import WarehouseResource
from ingestion.channels import CHANNELS, Channel
from ingestion.pipeline import RAW_DATASET, channel_pipeline
from ingestion.sources import channel_source


class RawTableTranslator(DagsterDltTranslator):
    """Key each dlt resource as `raw/<table>`, the key dbt's sources point at."""

    def get_asset_spec(self, data: DltResourceTranslatorData) -> dg.AssetSpec:
        spec = super().get_asset_spec(data)
        table = data.resource.name
        is_quarantine = table.startswith("quarantine_")
        return spec.replace_attributes(
            key=dg.AssetKey([RAW_DATASET, table]),
            deps=[],
            group_name="ingestion",
            description=(
                f"Records of landing channel `{data.resource.source_name}` that failed "
                "validation: channel, source file, line, reason and the original text."
                if is_quarantine
                else f"Raw `{data.resource.source_name}` records loaded as sent, typed per "
                "docs/landing.md, with their source file and line."
            ),
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
        yield from dlt.run(
            context=context,
            dlt_source=channel_source(channel, warehouse.landing),
            dlt_pipeline=channel_pipeline(channel, warehouse.database),
            dagster_dlt_translator=RawTableTranslator(),
        )

    return ingest


ingestion_assets = [_channel_assets(channel) for channel in CHANNELS.values()]
