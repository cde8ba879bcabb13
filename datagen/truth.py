"""Ground truth (_truth/): which person every identifier seen in a channel belongs to.

Channels report the owners of the identifiers they show; truth lists each of those exactly
once, in canonical form (e-mail trimmed and lower-cased, handle lower-cased with the @).
"""

from collections import defaultdict

import numpy as np
import pyarrow as pa

from datagen.campaigns import CAMPAIGNS
from datagen.personas import PERSONA_NAMES
from datagen.persons import Devices, Population
from datagen.strings import lookup, take

PERSON_IDENTIFIERS = ("user_id", "customer_id", "email", "social_handle")
DEVICE_IDENTIFIERS = ("anonymous_id", "device_id")


class Sightings:
    """Collects the owners (person or device rows) of the identifiers each channel shows."""

    def __init__(self) -> None:
        self._owners: dict[str, list[np.ndarray]] = defaultdict(list)

    def add(self, identifier_type: str, owners: np.ndarray) -> None:
        if identifier_type not in PERSON_IDENTIFIERS + DEVICE_IDENTIFIERS:
            raise ValueError(f"unknown identifier type {identifier_type!r}")
        self._owners[identifier_type].append(np.asarray(owners, dtype=np.int64))

    def owners(self, identifier_type: str) -> np.ndarray:
        return np.unique(np.concatenate([np.zeros(0, np.int64), *self._owners[identifier_type]]))


def identities_table(sightings: Sightings, population: Population, devices: Devices) -> pa.Table:
    """identifier_type, identifier_value, true_person_id; sorted by type and value."""
    values = {
        "user_id": population.user_ids,
        "customer_id": population.customer_ids,
        "email": population.emails,
        "social_handle": population.handles,
    }
    parts = []
    for identifier_type in PERSON_IDENTIFIERS + DEVICE_IDENTIFIERS:
        rows = sightings.owners(identifier_type)
        if identifier_type in DEVICE_IDENTIFIERS:
            identifier_values, persons = take(devices.ids, rows), devices.owner[rows]
        else:
            identifier_values, persons = take(values[identifier_type], rows), rows
        parts.append(
            pa.table(
                {
                    "identifier_type": pa.repeat(identifier_type, len(rows)),
                    "identifier_value": identifier_values,
                    "true_person_id": take(population.person_ids, persons),
                }
            )
        )
    table = pa.concat_tables(parts)
    if table["identifier_value"].null_count:
        raise RuntimeError("an identifier was sighted for a person who does not have it")
    return table.sort_by([("identifier_type", "ascending"), ("identifier_value", "ascending")])


def personas_table(population: Population) -> pa.Table:
    """Every person with the persona it was drawn from (what segmentation should recover)."""
    return pa.table(
        {
            "true_person_id": population.person_ids,
            "persona": lookup(PERSONA_NAMES, population.persona),
        }
    )


def ab_truth_table() -> pa.Table:
    """The planted conversion rate of every e-mail campaign variant."""
    rows = [
        {"campaign_id": c.campaign_id, "variant": variant, "true_conversion_rate": rate}
        for c in CAMPAIGNS
        for variant, rate in zip(c.variants, c.true_conversion_rates)
    ]
    return pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("campaign_id", pa.string()),
                ("variant", pa.string()),
                ("true_conversion_rate", pa.float64()),
            ]
        ),
    )
