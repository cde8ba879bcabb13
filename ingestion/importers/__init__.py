"""Importers: real public datasets -> landing-zone files (docs/landing.md), one module each.

Each importer reads one dataset file (its folder's SOURCE.md describes it), writes one file
per landing channel named after the dataset (e.g. `orders/online_retail.parquet`, so
imports and generated data can share a landing dir) and returns a summary:
`rows_written` per channel and `set_aside` (reason -> source rows deliberately not written),
such that for every channel in `one_row_per_source_row`,
`source_rows == rows_written[channel] + sum(set_aside.values())`.
The datasets themselves stay outside the repository (several are research-use only).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ingestion.importers.bank_marketing import import_bank_marketing
from ingestion.importers.hillstrom import import_hillstrom
from ingestion.importers.online_retail import import_online_retail
from ingestion.importers.taobao import import_taobao


@dataclass(frozen=True)
class Importer:
    folder: str  # the dataset's folder under data/real/
    default_file: str  # the file inside that folder to import
    run: Callable[[Path, Path], dict]  # (source file, landing dir) -> summary


IMPORTERS: dict[str, Importer] = {
    "online-retail": Importer("online_retail_uci", "online_retail.csv.gz", import_online_retail),
    "taobao": Importer(
        "taobao_user_behavior_subset", "UserBehavior_first814users.csv.gz", import_taobao
    ),
    "hillstrom": Importer("hillstrom_email_campaign", "hillstrom.csv.gz", import_hillstrom),
    "bank-marketing": Importer("bank_marketing_uci", "bank-full.csv.gz", import_bank_marketing),
}


def import_dataset(name: str, source: Path, out_dir: Path) -> dict:
    """Import dataset `name` from `source` (its folder, or the file itself) into `out_dir`."""
    importer = IMPORTERS.get(name)
    if importer is None:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(IMPORTERS))}"
        )
    source = Path(source)
    source_file = source / importer.default_file if source.is_dir() else source
    if not source_file.is_file():
        raise ValueError(f"{name}: source file not found: {source_file}")
    try:
        with source_file.open("rb") as handle:
            handle.read(1)
    except OSError as error:
        raise ValueError(f"{name}: cannot read source file {source_file}: {error}") from error
    return importer.run(source_file, Path(out_dir))
