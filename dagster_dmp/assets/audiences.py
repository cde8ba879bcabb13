"""Audiences: the rules in audiences/*.yml, compiled to SQL and run in the warehouse, with
their reach over time and their overlaps."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

import marts
from activation.audiences import (
    LOOKALIKE_MEMBERS,
    LOOKALIKE_MEMBERS_DDL,
    compile_audiences,
    load_audiences,
    lookalike_requests,
    membership_query,
    read_catalogue,
)
from activation.exports import deliver, exported_identifiers, load_destinations, members_query
from dagster_dmp import settings
from dagster_dmp.assets.ml.inputs import (
    PERSON_BEHAVIOUR,
    PERSON_IDENTIFIERS,
    PERSON_INTERESTS,
    PERSON_PROFILES,
    PERSON_SEGMENTS,
)
from dagster_dmp.assets.ml.lookalikes import lookalike_features
from dagster_dmp.assets.ml.propensity import PROPENSITY_SCORES
from dagster_dmp.assets.ml.recommendations import RECOMMENDATIONS
from dagster_dmp.assets.ml.value import CUSTOMER_VALUE
from dagster_dmp.resources import WarehouseResource, markdown_preview
from ml.lookalike import find_lookalikes

AUDIENCE_MEMBERS = dg.AssetKey(["audiences", "audience_members"])
AUDIENCE_EXPORTS = dg.AssetKey(["audiences", "audience_exports"])
MEMBERS_TABLE = "audiences.audience_members"
REACH_TABLE = "audiences.audience_reach"
OVERLAP_TABLE = "audiences.audience_overlap"

# Reach is history: one row per audience and data day, rewritten when a day is recomputed.
REACH_DDL = f"""
create table if not exists {REACH_TABLE} (
    audience varchar not null,
    as_of_date date not null,
    members bigint not null,
    persons bigint not null,
    computed_at timestamp not null
)"""

# Every audience against every audience and every segment: persons in both.
OVERLAP_SQL = f"""
with sizes as (
    select audience, count(*) as members from {MEMBERS_TABLE} group by audience
),
pairs as (
    select a.audience, 'audience' as other_kind, b.audience as other, count(*) as both_members
    from {MEMBERS_TABLE} as a
    join {MEMBERS_TABLE} as b on a.person_id = b.person_id
    group by a.audience, b.audience
    union all
    select a.audience, 'segment' as other_kind, s.segment_name as other, count(*) as both_members
    from {MEMBERS_TABLE} as a
    join ml.person_segments as s on a.person_id = s.person_id
    group by a.audience, s.segment_name
)
select
    pairs.audience,
    pairs.other_kind,
    pairs.other,
    pairs.both_members,
    cast(pairs.both_members as double) / sizes.members as share_of_audience
from pairs
join sizes on pairs.audience = sizes.audience
order by pairs.audience, pairs.other_kind, pairs.other
"""


@dg.asset(
    key=AUDIENCE_MEMBERS,
    deps=[
        PERSON_PROFILES,
        PERSON_INTERESTS,
        PERSON_BEHAVIOUR,
        PERSON_SEGMENTS,
        PROPENSITY_SCORES,
        CUSTOMER_VALUE,
        RECOMMENDATIONS,
    ],
    group_name="activation",
    kinds={"duckdb", "sql"},
    description=(
        "Members of every audience defined in audiences/*.yml (DMP_AUDIENCES_DIR): each rule is "
        "compiled to one SQL query over the profiles, segments, model scores, interests and "
        "recommendations and run in the warehouse; lookalike rules rank persons outside their "
        "seed audience with the lookalike model (audiences.lookalike_members). Also writes "
        "audiences.audience_reach (size per audience and data day) and "
        "audiences.audience_overlap (persons shared with every audience and segment)."
    ),
)
def audience_members(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    audiences = load_audiences(settings.audiences_dir())
    with warehouse.connect(read_only=True) as con:
        compiled = compile_audiences(audiences, read_catalogue(con))
    requests = lookalike_requests(audiences)
    features = lookalike_features(warehouse) if requests else None
    lookalike_notes = {}
    with warehouse.connect() as con:
        for statement in LOOKALIKE_MEMBERS_DDL:
            con.execute(statement)
        for request in requests:
            seed = compiled[request.seed]
            seed_ids = [row[0] for row in con.execute(seed.sql, seed.params).fetchall()]
            con.execute(f"delete from {LOOKALIKE_MEMBERS} where seed_audience = ?", [request.seed])
            if not seed_ids or len(seed_ids) >= len(features):
                lookalike_notes[request.seed] = (
                    f"no lookalikes: the seed has {len(seed_ids)} of {len(features)} persons"
                )
                continue
            found = find_lookalikes(
                features.drop(columns="rfm_segment"), seed_ids, top_n=request.top
            )
            ranking = found.ranking.assign(seed_audience=request.seed)
            con.register("ranking", ranking)
            con.execute(
                f"insert into {LOOKALIKE_MEMBERS} (seed_audience, person_id, rank, score) "
                "select seed_audience, person_id, rank, score from ranking"
            )
            con.unregister("ranking")
            lookalike_notes[request.seed] = (
                f"{len(ranking)} ranked from a seed of {found.seed_size} (seed_auc "
                f"{found.seed_auc:.2f})"
            )
        sql, params = membership_query(compiled)
        con.execute("begin")
        con.execute(f"create or replace table {MEMBERS_TABLE} as {sql}", params)
        con.execute(REACH_DDL)
        as_of, persons = con.execute(
            f"select max(as_of_date), count(*) from {marts.PERSON_PROFILES}"
        ).fetchone()
        con.execute(f"delete from {REACH_TABLE} where as_of_date = ?", [as_of])
        computed_at = datetime.now(UTC).replace(tzinfo=None)
        # A warehouse without profiles has no data day to record a reach for.
        for name in compiled if as_of is not None else ():
            con.execute(
                f"insert into {REACH_TABLE} "
                f"select ?, ?, (select count(*) from {MEMBERS_TABLE} where audience = ?), ?, ?",
                [name, as_of, name, persons, computed_at],
            )
        con.execute(f"create or replace table {OVERLAP_TABLE} as {OVERLAP_SQL}")
        con.execute("commit")
        reach = con.execute(
            f"select audience, members from {REACH_TABLE} where as_of_date = ? order by audience",
            [as_of],
        ).df()
        members = con.execute(f"select count(*) from {MEMBERS_TABLE}").fetchone()[0]
    sizes = reach.assign(
        share_of_persons=reach["members"] / max(persons, 1),
        description=[compiled[name].description for name in reach["audience"]],
    )
    context.log.info(f"{len(compiled)} audiences, {members:,} memberships")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": members,
            "audiences": markdown_preview(sizes, rows=len(sizes)),
            "as_of_date": str(as_of),
            "lookalikes": dg.MetadataValue.json(lookalike_notes),
        }
    )


@dg.asset_check(
    asset=AUDIENCE_MEMBERS,
    description="Every audience has members (an empty one usually means a rule names a "
    "segment, category or product the data does not have).",
)
def every_audience_has_members(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    reach = warehouse.read_frame(
        f"select audience, members from {REACH_TABLE} "
        f"where as_of_date = (select max(as_of_date) from {REACH_TABLE})"
    )
    empty = sorted(reach.loc[reach["members"] == 0, "audience"])
    return dg.AssetCheckResult(
        passed=not empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"empty: {', '.join(empty)}" if empty else None,
        metadata={"audiences": len(reach), "empty_audiences": len(empty)},
    )


@dg.asset(
    key=AUDIENCE_EXPORTS,
    deps=[AUDIENCE_MEMBERS, PERSON_PROFILES, PERSON_IDENTIFIERS],
    group_name="activation",
    kinds={"duckdb", "csv", "parquet"},
    description=(
        "Delivers each audience to the destinations in destinations/*.yml (DMP_DESTINATIONS_DIR) "
        "as files under DMP_EXPORTS_DIR: SHA-256 hashed identifiers of the members whose consent "
        "covers the destination's purpose (ads, email), the members added and removed since the "
        "last delivery, and a manifest with row counts and checksums; written atomically, and "
        "nothing is written for an unchanged audience (activation/exports.py)."
    ),
)
def audience_exports(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    audiences = {audience.name for audience in load_audiences(settings.audiences_dir())}
    destinations = load_destinations(settings.destinations_dir(), audiences)
    at = datetime.now(UTC)
    deliveries = []
    for destination in destinations:
        sql, params = members_query(destination)
        with warehouse.connect(read_only=True) as con:
            rows = con.execute(sql, params).df()
        for audience in destination.audiences:
            members = exported_identifiers(rows[rows["audience"] == audience])
            deliveries.append(deliver(members, destination, audience, settings.exports_dir(), at))
    summary = pd.DataFrame(
        [
            {
                "destination": d.destination,
                "audience": d.audience,
                "rows": d.rows,
                "added": d.added,
                "removed": d.removed,
                "delivered": d.changed,
            }
            for d in deliveries
        ],
        columns=["destination", "audience", "rows", "added", "removed", "delivered"],
    )
    context.log.info(f"{int(summary['delivered'].sum())} of {len(summary)} exports changed")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(summary["rows"].sum()),
            "exports": markdown_preview(summary, rows=len(summary)),
            "path": dg.MetadataValue.path(str(settings.exports_dir())),
        }
    )


audience_assets = [audience_members, audience_exports]
audience_checks = [every_audience_has_members]
