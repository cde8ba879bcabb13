"""One person's whole profile, audiences and recommendations: how the serving tables are
built from the marts and ML outputs, and the lookups `dmp profile` and `dmp serve` share.

The serving tables live in a snapshot (snapshot.py), under the schema `serving`:
- `profiles`: one JSON document per person, every part of the profile in one row, so a
  lookup is one indexed read;
- `identifiers`: the identity graph (e-mails and phones as the warehouse hashes them);
- `recommendations`, `audience_members` (with the person's consent per purpose) and
  `audiences` (members and consented members per purpose).
"""

import json
from typing import Any

import duckdb

import marts
from activation.exports import PURPOSES
from ingestion.suppression import CANONICAL_SQL

PROFILES = marts.PERSON_PROFILES.relation
# Every other table a profile reads, with the columns it takes: a table a run has not
# built yet (no ML before the first full run) serves as empty.
SOURCES = {
    marts.PERSON_IDENTIFIERS.relation: {
        "identifier_type": "varchar",
        "identifier_value": "varchar",
        "person_id": "varchar",
    },
    marts.PERSON_INTERESTS.relation: {
        "person_id": "varchar",
        "category": "varchar",
        "interest_score": "double",
        "interest_rank": "bigint",
        "weighted_activities": "bigint",
        "last_activity_at": "timestamp",
    },
    "ml.person_segments": {
        "person_id": "varchar",
        "segment_id": "bigint",
        "segment_name": "varchar",
        "probability": "double",
    },
    "ml.propensity_scores": {
        "person_id": "varchar",
        "probability": "double",
        "model": "varchar",
        "horizon_days": "bigint",
    },
    "ml.customer_value": {
        "person_id": "varchar",
        "probability_alive": "double",
        "expected_purchases_90d": "double",
        "predicted_spend_90d": "double",
    },
    "ml.recommendations": {
        "person_id": "varchar",
        "rank": "bigint",
        "product_id": "varchar",
        "score": "double",
    },
    "audiences.audience_members": {"audience": "varchar", "person_id": "varchar"},
}
# The profile's columns by part; any column not named here is kept under "attributes".
PROFILE_PARTS = {
    "demographics": ["gender", "birth_year", "country", "loyalty_tier"],
    "rfm": [
        "rfm_segment",
        "recency_days",
        "frequency",
        "monetary",
        "avg_order_value",
        "r_score",
        "f_score",
        "m_score",
    ],
    "preferences": [
        "top_interest",
        "top_interest_score",
        "preferred_brand",
        "price_preference",
        "price_index",
    ],
    "engagement": [
        "engagement_score",
        "primary_channel",
        "sessions",
        "avg_session_seconds",
        "web_events",
        "app_events",
        "social_engagements",
        "store_orders",
    ],
    "activity": ["first_seen_at", "last_seen_at", "last_purchase_at", "as_of_date"],
}
# What a caller may look a person up by -> the identity graph's type; e-mails and phones are
# normalised and hashed exactly as the warehouse does (ingestion/suppression.py).
LOOKUP_TYPES = {
    "email": "email_sha256",
    "phone": "phone_sha256",
    "user_id": "user_id",
    "anonymous_id": "anonymous_id",
    "device_id": "device_id",
    "customer_id": "customer_id",
    "social_handle": "social_handle",
    "email_sha256": "email_sha256",
    "phone_sha256": "phone_sha256",
}
_ALREADY_HASHED = {"email_sha256", "phone_sha256"}
MAX_PAGE = 1000

AUDIENCES_SQL = (
    "create or replace table serving.audiences as select audience, count(*) as members, "
    + ", ".join(
        f"count(*) filter (where {column}) as consented_{purpose}"
        for purpose, column in PURPOSES.items()
    )
    + " from serving.audience_members group by audience order by audience"
)


def build_serving_tables(con: duckdb.DuckDBPyConnection, source: str) -> int:
    """Write the `serving` tables into `con`'s database from the warehouse attached as
    `source`; returns the number of persons."""
    present = {
        f"{schema}.{table}"
        for schema, table in con.execute(
            # views too: built on Spark, the marts are views over its Parquet (marts/)
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = ?",
            [source],
        ).fetchall()
    }
    if PROFILES not in present:
        raise RuntimeError(f"the warehouse has no {PROFILES} yet: build the warehouse models first")
    for table, columns in SOURCES.items():
        view = "src_" + table.split(".")[1]
        if table in present:
            body = f"select {', '.join(columns)} from {source}.{table}"
        else:
            body = "select " + ", ".join(f"cast(null as {t}) as {c}" for c, t in columns.items())
            body += " where false"
        con.execute(f"create or replace temp view {view} as {body}")
    profile_columns = [row[0] for row in con.execute(f"describe {source}.{PROFILES}").fetchall()]
    con.execute("create schema if not exists serving")
    con.execute(_documents_sql(source, profile_columns))
    con.execute(
        "create or replace table serving.identifiers as select identifier_type,"
        " identifier_value, person_id from src_person_identifiers"
        " where person_id in (select person_id from serving.profiles)"
        " order by identifier_type, identifier_value"
    )
    con.execute(
        "create or replace table serving.recommendations as select person_id, rank, product_id,"
        " score from src_recommendations order by person_id, rank"
    )
    consent = ", ".join(f"coalesce(p.{c}, false) as {c}" for c in PURPOSES.values())
    con.execute(
        f"create or replace table serving.audience_members as select m.audience, m.person_id,"
        f" {consent} from src_audience_members as m"
        f" join {source}.{PROFILES} as p on p.person_id = m.person_id"
        " order by m.audience, m.person_id"
    )
    con.execute(AUDIENCES_SQL)
    con.execute("create unique index profiles_person on serving.profiles (person_id)")
    con.execute(
        "create index identifiers_value on serving.identifiers (identifier_type, identifier_value)"
    )
    con.execute("create index recommendations_person on serving.recommendations (person_id)")
    return con.execute("select count(*) from serving.profiles").fetchone()[0]


def remove_persons(con: duckdb.DuckDBPyConnection, person_ids: list[str]) -> int:
    """Delete persons from the serving tables of `con`'s snapshot (erasure); returns rows
    deleted."""
    removed = 0
    for table in ("profiles", "identifiers", "recommendations", "audience_members"):
        removed += con.execute(
            f"delete from serving.{table} where person_id in (select unnest(?::varchar[]))",
            [person_ids],
        ).fetchone()[0]
    con.execute(AUDIENCES_SQL)
    return removed


def _documents_sql(source: str, profile_columns: list[str]) -> str:
    def obj(columns: list[str], alias: str = "p") -> str:
        return "json_object(" + ", ".join(f"'{c}', {alias}.{c}" for c in columns) + ")"

    def optional(part: str, alias: str, table: str) -> str:
        """A model's output for the person, null when the model scored them not."""
        columns = [c for c in SOURCES[table] if c != "person_id"]
        return f"'{part}', case when {alias}.person_id is not null then {obj(columns, alias)} end"

    named = {c for columns in PROFILE_PARTS.values() for c in columns}
    named |= {"person_id", *PURPOSES.values()}
    parts = {
        part: obj([c for c in columns if c in profile_columns])
        for part, columns in PROFILE_PARTS.items()
    }
    parts["attributes"] = obj([c for c in profile_columns if c not in named])
    consent = ", ".join(
        f"'{purpose}', coalesce(p.{column}, false)" for purpose, column in PURPOSES.items()
    )
    fields = [
        "'person_id', p.person_id",
        "'identifiers', coalesce(i.identifiers, '[]'::json)",
        *(f"'{part}', {sql}" for part, sql in parts.items()),
        "'interests', coalesce(n.interests, '[]'::json)",
        f"'consent', json_object({consent})",
        optional("segment", "s", "ml.person_segments"),
        optional("propensity", "r", "ml.propensity_scores"),
        optional("predicted_value", "v", "ml.customer_value"),
        "'recommendations', coalesce(c.recommendations, '[]'::json)",
        "'audiences', coalesce(a.audiences, '[]'::json)",
    ]
    return f"""
        create or replace table serving.profiles as
        with
        identifiers as (
            select person_id, to_json(list(json_object('type', identifier_type,
                'value', identifier_value) order by identifier_type, identifier_value))
                as identifiers
            from src_person_identifiers group by person_id
        ),
        interests as (
            select person_id, to_json(list(json_object('category', category,
                'score', interest_score, 'rank', interest_rank,
                'weighted_activities', weighted_activities,
                'last_activity_at', last_activity_at) order by interest_rank, category))
                as interests
            from src_person_interests group by person_id
        ),
        recommendations as (
            select person_id, to_json(list(json_object('rank', rank,
                'product_id', product_id, 'score', score) order by rank)) as recommendations
            from src_recommendations group by person_id
        ),
        audiences as (
            select person_id, to_json(list(audience order by audience)) as audiences
            from src_audience_members group by person_id
        ),
        segments as (select distinct on (person_id) * from src_person_segments),
        propensity as (select distinct on (person_id) * from src_propensity_scores),
        value as (select distinct on (person_id) * from src_customer_value)
        select p.person_id, cast(json_object({", ".join(fields)}) as varchar) as document
        from {source}.{PROFILES} as p
        left join identifiers as i on i.person_id = p.person_id
        left join interests as n on n.person_id = p.person_id
        left join recommendations as c on c.person_id = p.person_id
        left join audiences as a on a.person_id = p.person_id
        left join segments as s on s.person_id = p.person_id
        left join propensity as r on r.person_id = p.person_id
        left join value as v on v.person_id = p.person_id
        order by p.person_id
    """


def canonical_identifier(
    con: duckdb.DuckDBPyConnection, identifier_type: str, value: str
) -> tuple[str, str | None]:
    """The identity graph's (type, value) for what a caller typed: the e-mail
    ' Ann@Example.com ' becomes ('email_sha256', sha256 of 'ann@example.com')."""
    if identifier_type not in LOOKUP_TYPES:
        raise ValueError(
            f"unknown identifier type {identifier_type!r}: one of {', '.join(LOOKUP_TYPES)}"
        )
    kind = LOOKUP_TYPES[identifier_type]
    sql = (
        "nullif(lower(trim({v})), '')"
        if identifier_type in _ALREADY_HASHED
        else CANONICAL_SQL[kind]
    )
    canonical = con.execute(
        "select " + sql.format(v="cast($value as varchar)"), {"value": value}
    ).fetchone()[0]
    return kind, canonical


def find_person(con: duckdb.DuckDBPyConnection, identifier_type: str, value: str) -> str | None:
    """The person holding the identifier, or None."""
    if identifier_type == "person_id":
        return value.strip() if profile_document(con, value.strip()) else None
    kind, canonical = canonical_identifier(con, identifier_type, value)
    row = con.execute(
        "select person_id from serving.identifiers"
        " where identifier_type = ? and identifier_value = ?",
        [kind, canonical],
    ).fetchone()
    return row[0] if row else None


def profile_document(con: duckdb.DuckDBPyConnection, person_id: str) -> str | None:
    """The person's profile as JSON text (the API sends it as it is), or None."""
    row = con.execute(
        "select document from serving.profiles where person_id = ?", [person_id]
    ).fetchone()
    return row[0] if row else None


def profile(con: duckdb.DuckDBPyConnection, person_id: str) -> dict[str, Any] | None:
    document = profile_document(con, person_id)
    return json.loads(document) if document is not None else None


def recommendations(
    con: duckdb.DuckDBPyConnection, person_id: str, limit: int
) -> list[dict[str, Any]]:
    rows = con.execute(
        "select rank, product_id, score from serving.recommendations where person_id = ?"
        " order by rank limit ?",
        [person_id, limit],
    ).fetchall()
    return [{"rank": rank, "product_id": product, "score": score} for rank, product, score in rows]


def audiences(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    purposes = list(PURPOSES)
    columns = ", ".join(f"consented_{purpose}" for purpose in purposes)
    rows = con.execute(
        f"select audience, members, {columns} from serving.audiences order by audience"
    ).fetchall()
    return [
        {"name": name, "members": members, "consented": dict(zip(purposes, consented))}
        for name, members, *consented in rows
    ]


def audience_members(
    con: duckdb.DuckDBPyConnection, audience: str, purpose: str, limit: int, after: str | None
) -> tuple[list[str], str | None] | None:
    """A page of the audience's members whose consent covers `purpose`, in person id order
    after the cursor `after`; with the cursor of the next page (None on the last). None when
    the audience is unknown."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}: one of {', '.join(PURPOSES)}")
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}")
    known = con.execute(
        "select count(*) from serving.audiences where audience = ?", [audience]
    ).fetchone()[0]
    if not known:
        return None
    rows = con.execute(
        f"select person_id from serving.audience_members where audience = ?"
        f" and {PURPOSES[purpose]} and person_id > ? order by person_id limit ?",
        [audience, after or "", limit + 1],
    ).fetchall()
    members = [row[0] for row in rows[:limit]]
    return members, (members[-1] if len(rows) > limit else None)
