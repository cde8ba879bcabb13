"""How well the identity graph stitches 100,000 persons: pairwise precision and recall of
marts.person_identifiers against the generator's truth, with a store kiosk shared by 300 people.

Run: .venv/bin/python bench/identity.py [--persons 100000 --days 30] [--kiosk-logins 300]
Writes bench/results/identity.json and bench/results/identity.md. Targets (the issue):
precision >= 0.99, recall >= 0.98; and the kiosk merges nobody.

Steps, in a temp folder that is removed afterwards:
1. generate the landing zone (datagen; 100,000 persons x 30 days by default, ~5M web + app
   event lines: 30 days keeps the whole run well inside 20-25 minutes on the 2-core machine);
2. plant a shared device: one extra app landing file in which `--kiosk-logins` different
   persons (a seeded sample of the planted user_ids, one login each, spread over the period
   so the device never looks like a bot) log in with their own user_id on the device
   `dev-store-kiosk` (as tests/test_identity_guards.py plants it);
3. ingest every channel in `ingestion.channels.CHANNELS` with `ingestion.pipeline.load_channel`
   into a fresh DuckDB file;
4. copy dbt_project/ and run `dbt build` on it with DMP_DUCKDB_PATH pointing at that file;
5. score marts.person_identifiers against `_truth/identities.parquet` in DuckDB SQL.

Scoring (as tests/test_pipeline.py::test_identity_stitching_precision_and_recall does, in SQL):
truth e-mails are hashed (SHA-256 of the trimmed, lower-cased address) to email_sha256, and
social handles are compared lower-case. Pairs of a grouping = sum of n*(n-1)/2 over its
groups. precision = pairs in the same true and the same stitched person / pairs in the same
stitched person; recall = the same / pairs in the same true person. Only planted (truth)
identifiers count; a truth identifier missing from the graph counts as a person of its own.
- recall by identifier type: for each true person, its main stitched person is the one that
  holds most of its identifiers (tie: the smaller person_id); the others are its unlinked
  identifiers, counted per type. Per type also: the share of the true mates of its
  identifiers that share their stitched person, and its share of the missed pairs (half of a
  missed pair to each end's type).
- recall of linkable pairs: true pairs joined by a chain of records in the raw tables
  (connected components of the links the raw data shows, computed apart from dbt): what a
  perfect stitcher could reach.
- kiosk: the device must be in intermediate.int_identifiers_excluded and not in
  marts.person_identifiers, and the kiosk users' stitched persons must each hold one true
  person. The largest stitched person, in true persons, is reported for the whole graph.
"""

import argparse
import datetime as dt
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from machine import describe_machine
from warehouse import _code_state, _dbt_build, _say, _tree_sha1

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
DBT_PROJECT = REPO / "dbt_project"
START = date(2026, 9, 1)  # the generator's default period start
KIOSK = "dev-store-kiosk"
TARGETS = {"precision": 0.99, "recall": 0.98}

# Truth in the identity graph's form: e-mails hashed, handles lower-case.
TRUTH_SQL = """
create table truth as
select
    case when identifier_type = 'email' then 'email_sha256' else identifier_type end
        as identifier_type,
    case
        when identifier_type = 'email' then sha256(lower(trim(identifier_value)))
        when identifier_type = 'social_handle' then lower(identifier_value)
        else identifier_value
    end as identifier_value,
    true_person_id
from read_parquet(?)
"""

# Every truth identifier with its stitched person (a missing one is a person of its own).
JOINED_SQL = """
create table joined as
select
    truth.identifier_type,
    truth.identifier_value,
    truth.identifier_type || ':' || truth.identifier_value as node_key,
    truth.true_person_id,
    coalesce(predicted.person_id, 'missing:' || truth.identifier_type || ':'
        || truth.identifier_value) as person_id,
    predicted.person_id is null as is_missing
from truth
left join (
    select
        identifier_type,
        case when identifier_type = 'social_handle' then lower(identifier_value)
            else identifier_value end as identifier_value,
        person_id
    from wh.marts.person_identifiers
) as predicted
    on truth.identifier_type = predicted.identifier_type
    and truth.identifier_value = predicted.identifier_value
"""

PAIRS_SQL = """
with
together as (select count(*) as n from joined group by true_person_id, person_id),
stitched as (select count(*) as n from joined group by person_id),
planted as (select count(*) as n from joined group by true_person_id)
select
    (select coalesce(sum(n * (n - 1) // 2), 0) from together),
    (select coalesce(sum(n * (n - 1) // 2), 0) from stitched),
    (select coalesce(sum(n * (n - 1) // 2), 0) from planted),
    (select count(*) from joined),
    (select count(*) filter (where is_missing) from joined),
    (select count(distinct true_person_id) from joined),
    (select count(distinct person_id) from joined)
"""

BY_TYPE_SQL = """
with
sizes as (
    select
        *,
        count(*) over (partition by true_person_id) as true_size,
        count(*) over (partition by true_person_id, person_id) as together_size
    from joined
),
main_person as (
    select true_person_id, person_id as main_person_id
    from (
        select
            true_person_id,
            person_id,
            row_number() over (
                partition by true_person_id order by count(*) desc, person_id
            ) as rank
        from joined
        group by 1, 2
    )
    where rank = 1
)
select
    sizes.identifier_type,
    count(*) as identifiers,
    count(*) filter (where sizes.person_id <> main_person.main_person_id) as unlinked,
    count(*) filter (where sizes.is_missing) as missing_from_graph,
    sum(together_size - 1) as mates_linked,
    sum(true_size - 1) as mates,
    sum(true_size - together_size) as missed_mates
from sizes
inner join main_person using (true_person_id)
group by 1
order by 1
"""

LARGEST_SQL = """
with per_person as (
    select person_id, count(distinct true_person_id) as true_persons, count(*) as identifiers
    from joined
    group by 1
)
select
    max(true_persons),
    count(*) filter (where true_persons > 1),
    coalesce(sum(true_persons) filter (where true_persons > 1), 0),
    arg_max(identifiers, true_persons)
from per_person
"""

KIOSK_SQL = """
with
kiosk_rows as (
    select joined.person_id
    from joined
    inner join kiosk_users
        on joined.identifier_type = 'user_id'
        and joined.identifier_value = kiosk_users.user_id
),
per_person as (
    select person_id, count(distinct true_person_id) as true_persons from joined group by 1
)
select
    (select count(*) from kiosk_rows),
    count(distinct joined.person_id),
    count(distinct joined.true_person_id),
    coalesce(max(per_person.true_persons), 0)
from joined
inner join per_person using (person_id)
where joined.person_id in (select person_id from kiosk_rows)
"""

# Pairs of identifiers the raw data shows on one record (the oracle of tests/test_pipeline.py,
# in SQL): e-mails hashed, handles lower-case with an @.
OBSERVED_LINKS_SQL = """
with links as (
    select 'anonymous_id' as a_type, anonymous_id as a, 'user_id' as b_type, user_id as b
    from wh.raw.web_events where user_id is not null
    union all
    select 'device_id', device_id, 'user_id', user_id from wh.raw.app_events
    where user_id is not null
    union all
    select 'customer_id', customer_id, 'user_id', user_id from wh.raw.crm_customers
    where user_id is not null
    union all
    select 'customer_id', customer_id, 'email', email from wh.raw.crm_customers
    where email is not null
    union all
    select 'customer_id', customer_id, 'social_handle', social_handle from wh.raw.crm_customers
    where social_handle is not null
    union all
    select 'customer_id', customer_id, 'email', email from wh.raw.orders
    where customer_id is not null and email is not null
    union all
    select 'customer_id', customer_id, 'user_id', user_id from wh.raw.orders
    where customer_id is not null and user_id is not null
    union all
    select 'user_id', user_id, 'email', email from wh.raw.orders
    where user_id is not null and email is not null
),
normalised as (
    select distinct
        {a_key} as a_key,
        {b_key} as b_key
    from links
),
select a_nodes.node as a, b_nodes.node as b
from normalised
inner join node_index as a_nodes on normalised.a_key = a_nodes.node_key
inner join node_index as b_nodes on normalised.b_key = b_nodes.node_key
"""


def _link_key(side: str) -> str:
    return (
        f"case {side}_type"
        f" when 'email' then 'email_sha256:' || sha256(lower(trim({side}, ' \t\r\n')))"
        f" when 'social_handle' then 'social_handle:' || case"
        f" when lower(trim({side})) like '@%' then lower(trim({side}))"
        f" else '@' || lower(trim({side})) end"
        f" else {side}_type || ':' || {side} end"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=100_000, help="persons to generate")
    parser.add_argument("--days", type=int, default=30, help="days to generate")
    parser.add_argument("--seed", type=int, default=1, help="generator and kiosk sample seed")
    parser.add_argument(
        "--kiosk-logins", type=int, default=300, help="different persons logging in on the kiosk"
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folder")
    args = parser.parse_args()

    started_all = time.perf_counter()
    load_before = os.getloadavg()
    seconds = {}
    with tempfile.TemporaryDirectory(prefix="dmp_bench_identity_", dir=args.work_dir) as tmp:
        work = Path(tmp)
        landing = work / "landing"
        _say(f"generating {args.persons:,} persons x {args.days} days")
        started = time.perf_counter()
        from datagen import generate

        manifest = generate(persons=args.persons, days=args.days, seed=args.seed, out_dir=landing)
        seconds["generate"] = round(time.perf_counter() - started, 1)
        written = {name: c["records_written"] for name, c in manifest["channels"].items()}
        landing_info = {
            "persons": args.persons,
            "days": args.days,
            "seed": args.seed,
            "event_lines": written.get("web_events", 0) + written.get("app_events", 0),
            "records_written": written,
        }
        _say(f"{landing_info['event_lines']:,} web + app event lines in {seconds['generate']} s")

        kiosk = _plant_kiosk(landing, args.kiosk_logins, args.days, args.seed)
        _say(f"planted {KIOSK}: {kiosk['logins']} logins of {kiosk['persons']} persons")

        db = work / "warehouse" / "dmp.duckdb"
        ingest = _ingest(landing, db)
        seconds["ingest"] = ingest["seconds"]
        _say(f"ingested {ingest['raw_rows']:,} raw rows in {ingest['seconds']} s")

        project = work / "dbt_project"
        shutil.copytree(
            DBT_PROJECT, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages")
        )
        code = _code_state(project)
        _say("dbt build")
        build = _dbt_build(project, db)
        seconds["dbt_build"] = build["wall_seconds"]
        _say(f"dbt build: {build['wall_seconds']} s wall, peak RSS {build['peak_rss_mb']:,} MB")

        started = time.perf_counter()
        scores = _score(landing, db, kiosk["user_ids"])
        seconds["score"] = round(time.perf_counter() - started, 1)
        _say(
            f"precision {scores['precision']:.4f}, recall {scores['recall']:.4f}, "
            f"largest stitched person {scores['largest_person_true_persons']} true persons"
        )
    seconds["total"] = round(time.perf_counter() - started_all, 1)

    kiosk.pop("user_ids")
    report = {
        "benchmark": (
            "identity stitching: pairwise precision/recall of marts.person_identifiers against "
            "the planted identities, with a shared store kiosk"
        ),
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(("dbt-core", "dbt-duckdb", "duckdb", "dlt")),
        "load_average_1m": {"before": round(load_before[0], 2), "after": _load_1m()},
        "seconds": seconds,
        "code": code,
        "landing": landing_info,
        "kiosk": kiosk,
        "ingest": ingest,
        "dbt_build": build,
        "scores": scores,
        "targets": {
            **{f"min_{name}": value for name, value in TARGETS.items()},
            "precision_met": scores["precision"] >= TARGETS["precision"],
            "recall_met": scores["recall"] >= TARGETS["recall"],
            "kiosk_merges_nobody": scores["kiosk"]["merges_nobody"],
        },
        "notes": _notes(code_changed=_tree_sha1(DBT_PROJECT) != code["dbt_tree_sha1"]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "identity.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (RESULTS / "identity.md").write_text(markdown)
    print(markdown)


def _plant_kiosk(landing: Path, logins: int, days: int, seed: int) -> dict:
    """One app file: `logins` different persons log in once each on the KIOSK device."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    truth = pq.read_table(landing / "_truth" / "identities.parquet")
    users = truth.filter(pc.equal(truth["identifier_type"], "user_id"))
    # One user_id per true person, then a seeded sample of those persons.
    first = {}
    for value, person in zip(
        users["identifier_value"].to_pylist(), users["true_person_id"].to_pylist(), strict=True
    ):
        first.setdefault(person, value)
    persons = sorted(first)
    if len(persons) < logins:
        raise SystemExit(f"only {len(persons)} persons have a user_id; need {logins}")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(persons), size=logins, replace=False))
    user_ids = [first[persons[index]] for index in chosen]
    per_day = -(-logins // days)
    lines = []
    for number, user_id in enumerate(user_ids):
        day = START + timedelta(days=number // per_day)
        minute = (number % per_day) * 7
        lines.append(
            json.dumps(
                {
                    "event_id": f"kiosk-{number}",
                    "event_type": "login",
                    "event_time": f"{day:%Y-%m-%d}T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
                    "device_id": KIOSK,
                    "user_id": user_id,
                    "platform": "android",
                }
            )
        )
    path = landing / "app_events" / "zz_planted_kiosk.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return {
        "device_id": KIOSK,
        "file": f"app_events/{path.name}",
        "logins": len(lines),
        "persons": len(set(chosen)),
        "logins_per_day_at_most": per_day,
        "user_ids": user_ids,
    }


def _ingest(landing: Path, db: Path) -> dict:
    import duckdb

    from ingestion.channels import CHANNELS
    from ingestion.pipeline import RAW_DATASET, load_channel

    seconds = {}
    for name, channel in CHANNELS.items():
        started = time.perf_counter()
        load_channel(channel, landing, db)
        seconds[name] = round(time.perf_counter() - started, 1)
    with duckdb.connect(str(db), read_only=True) as con:
        rows = {
            channel.table: con.execute(
                f"select count(*) from {RAW_DATASET}.{channel.table}"
            ).fetchone()[0]
            for channel in CHANNELS.values()
        }
    return {
        "seconds": round(sum(seconds.values()), 1),
        "seconds_per_channel": seconds,
        "raw_rows": sum(rows.values()),
        "raw_rows_per_table": rows,
    }


def _score(landing: Path, db: Path, kiosk_user_ids: list[str]) -> dict:
    import duckdb
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    with duckdb.connect() as con:
        con.execute(f"attach '{db}' as wh (read_only)")
        con.execute(TRUTH_SQL, [str(landing / "_truth" / "identities.parquet")])
        con.execute(JOINED_SQL)
        together, stitched, planted, identifiers, missing, true_persons, persons = con.execute(
            PAIRS_SQL
        ).fetchone()

        by_type = {}
        for row in con.execute(BY_TYPE_SQL).fetchall():
            kind, count, unlinked, absent, linked_mates, mates, missed = row
            by_type[kind] = {
                "identifiers": count,
                "unlinked": unlinked,
                "unlinked_share": _ratio(unlinked, count),
                "missing_from_graph": absent,
                "mates_recall": _ratio(linked_mates, mates),
                "missed_pairs": missed / 2,
            }
        missed_pairs = planted - together
        for figures in by_type.values():
            figures["missed_pairs_share"] = _ratio(figures["missed_pairs"], missed_pairs)

        largest, mixed, mixed_true, largest_identifiers = con.execute(LARGEST_SQL).fetchone()

        con.execute("create table kiosk_users (user_id varchar)")
        con.executemany("insert into kiosk_users values (?)", [[u] for u in kiosk_user_ids])
        users, kiosk_persons, kiosk_true, kiosk_largest = con.execute(KIOSK_SQL).fetchone()
        excluded = con.execute(
            "select exclusion_reason, linked_user_ids from wh.intermediate.int_identifiers_excluded"
            " where node_key = ?",
            [f"device_id:{KIOSK}"],
        ).fetchone()
        in_graph = con.execute(
            "select count(*) from wh.marts.person_identifiers "
            "where identifier_type = 'device_id' and identifier_value = ?",
            [KIOSK],
        ).fetchone()[0]
        exclusions = dict(
            con.execute(
                "select exclusion_reason, count(*) from wh.intermediate.int_identifiers_excluded"
                " group by 1 order by 1"
            ).fetchall()
        )

        con.execute(
            "create table node_index as "
            "select node_key, person_id, true_person_id, "
            "row_number() over (order by node_key, person_id) - 1 as node from joined"
        )
        links = con.execute(
            OBSERVED_LINKS_SQL.format(a_key=_link_key("a"), b_key=_link_key("b"))
        ).fetchnumpy()
        nodes = con.execute("select person_id, true_person_id from node_index order by node").df()

    graph = coo_matrix(
        (np.ones(len(links["a"])), (links["a"], links["b"])), shape=(len(nodes),) * 2
    )
    nodes["linkable_group"] = connected_components(graph, directed=False)[1]
    linkable_pairs = _pairs(nodes.groupby(["true_person_id", "linkable_group"]).size())
    linked = _pairs(nodes.groupby(["true_person_id", "linkable_group", "person_id"]).size())

    kiosk_ok = (
        excluded is not None
        and in_graph == 0
        and kiosk_largest == 1
        and kiosk_persons == kiosk_true == len(set(kiosk_user_ids))
    )
    return {
        "identifiers": identifiers,
        "missing_from_graph": missing,
        "true_persons": true_persons,
        "stitched_persons": persons,
        "pairs": {
            "same_true_and_stitched_person": together,
            "same_stitched_person": stitched,
            "same_true_person": planted,
            "linkable_true_pairs": linkable_pairs,
            "linkable_and_stitched": linked,
        },
        "precision": _ratio(together, stitched),
        "recall": _ratio(together, planted),
        "recall_of_linkable_pairs": _ratio(linked, linkable_pairs),
        "linkable_share_of_true_pairs": _ratio(linkable_pairs, planted),
        "by_identifier_type": by_type,
        "largest_person_true_persons": largest,
        "largest_person_identifiers": largest_identifiers,
        "persons_mixing_true_persons": mixed,
        "true_persons_in_mixed_persons": mixed_true,
        "exclusions": exclusions,
        "kiosk": {
            "exclusion_reason": excluded[0] if excluded else None,
            "linked_user_ids": excluded[1] if excluded else None,
            "in_person_identifiers": in_graph,
            "kiosk_users_found": users,
            "their_stitched_persons": kiosk_persons,
            "their_true_persons": kiosk_true,
            "largest_of_their_persons_true_persons": kiosk_largest,
            "merges_nobody": kiosk_ok,
        },
    }


def _pairs(sizes) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def _ratio(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 5) if denominator else None


def _load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def _notes(code_changed: bool) -> list[str]:
    notes = [
        (
            "Pairs are counted over the planted (truth) identifiers only: the kiosk, bots and "
            "placeholders are not in the truth. A truth identifier missing from "
            "marts.person_identifiers counts as a person of its own (it lowers recall)."
        ),
        (
            "unlinked: identifiers outside their true person's main stitched person (the one "
            "holding most of its identifiers). mates_recall: of the true mates of the type's "
            "identifiers, the share in the same stitched person. missed_pairs_share: the "
            "type's share of the true pairs not stitched (half of a pair to each end)."
        ),
        (
            "recall_of_linkable_pairs: recall over the true pairs the raw records chain "
            "together (web cookie + user_id, app device + user_id, CRM and order fields), as "
            "tests/test_pipeline.py measures it; the rest of the true pairs are never shown "
            "together in the data (a guest's checkout e-mail, a cookie that never logged in)."
        ),
        (
            "The dbt build is the whole `dbt build` (models, data tests, unit tests); its peak "
            "RSS is the dbt process's VmHWM, polled every 0.1 s."
        ),
        (
            "load_average_1m shows whether something else ran on the machine (the 2-core "
            "machine is shared)."
        ),
    ]
    if code_changed:
        notes.append(
            "The repository's dbt project changed during this run; `code` describes the copy "
            "that was measured."
        )
    return notes


def _markdown(report: dict) -> str:
    machine, landing, scores = report["machine"], report["landing"], report["scores"]
    kiosk, seconds, build = report["kiosk"], report["seconds"], report["dbt_build"]
    pairs, checks = scores["pairs"], scores["kiosk"]
    lines = [
        f"# Identity stitching: precision and recall at {landing['persons']:,} persons",
        "",
        (
            f"{landing['persons']:,} persons x {landing['days']} days (seed {landing['seed']}): "
            f"{landing['event_lines']:,} web + app event lines, "
            f"{report['ingest']['raw_rows']:,} raw rows; plus {kiosk['logins']} logins of "
            f"{kiosk['persons']} different persons on the shared device `{kiosk['device_id']}` "
            f"(at most {kiosk['logins_per_day_at_most']} a day). {machine['cores']} cores, "
            f"{machine['ram_gb']} GB, {machine['cpu']}; Python {machine['python']}, dbt-core "
            f"{machine['dbt-core']}, dbt-duckdb {machine['dbt-duckdb']}, duckdb "
            f"{machine['duckdb']}. Run {report['run_at']}: `{report['command']}`; load average "
            f"{report['load_average_1m']['before']} before, "
            f"{report['load_average_1m']['after']} after."
        ),
        "",
        (
            f"Time: generate {seconds['generate']} s, ingest {seconds['ingest']} s, dbt build "
            f"{seconds['dbt_build']} s (peak RSS {build['peak_rss_mb']:,} MB), scoring "
            f"{seconds['score']} s; {seconds['total']} s in all."
        ),
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        f"| precision | {scores['precision']:.4f} | >= {TARGETS['precision']} |",
        f"| recall | {scores['recall']:.4f} | >= {TARGETS['recall']} |",
        f"| recall of linkable pairs | {scores['recall_of_linkable_pairs']:.4f} | |",
        (
            "| largest stitched person, in true persons | "
            f"{scores['largest_person_true_persons']} | 1 |"
        ),
        (
            "| stitched persons holding more than one true person | "
            f"{scores['persons_mixing_true_persons']:,} | |"
        ),
        (
            f"| kiosk: excluded as | {checks['exclusion_reason']} "
            f"({checks['linked_user_ids']} linked user_ids) | excluded |"
        ),
        (
            f"| kiosk users: stitched persons / true persons / largest in true persons | "
            f"{checks['their_stitched_persons']} / {checks['their_true_persons']} / "
            f"{checks['largest_of_their_persons_true_persons']} | "
            f"{kiosk['persons']} / {kiosk['persons']} / 1 |"
        ),
        "",
        (
            f"{scores['identifiers']:,} planted identifiers of {scores['true_persons']:,} true "
            f"persons in {scores['stitched_persons']:,} stitched persons "
            f"({scores['missing_from_graph']:,} missing from the graph). Pairs: "
            f"{pairs['same_true_and_stitched_person']:,} in the same true and stitched person, "
            f"{pairs['same_stitched_person']:,} in the same stitched person, "
            f"{pairs['same_true_person']:,} in the same true person, of which "
            f"{pairs['linkable_true_pairs']:,} linkable in the raw data."
        ),
        "",
        "Unlinked identifiers, by type:",
        "",
        (
            "| identifier type | identifiers | unlinked | unlinked share | missing from graph "
            "| mates recall | share of missed pairs |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, figures in scores["by_identifier_type"].items():
        lines.append(
            f"| {kind} | {figures['identifiers']:,} | {figures['unlinked']:,} | "
            f"{_percent(figures['unlinked_share'])} | {figures['missing_from_graph']:,} | "
            f"{_fraction(figures['mates_recall'])} | "
            f"{_percent(figures['missed_pairs_share'])} |"
        )
    lines += [
        "",
        "Excluded identifiers: "
        + ", ".join(f"{reason} {count:,}" for reason, count in scores["exclusions"].items())
        + ".",
        "",
        *[f"- {note}" for note in report["notes"]],
        "",
    ]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


if __name__ == "__main__":
    main()
