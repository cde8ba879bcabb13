"""The audience asset in the session's full run: members are what each compiled rule selects,
reach and overlap agree with the members, lookalikes come from outside their seed."""

import duckdb
import pandas as pd
import pytest

from activation.audiences import compile_audiences, load_audiences, read_catalogue
from dagster_dmp.settings import REPO_ROOT


@pytest.fixture(scope="module")
def warehouse(pipeline_run):
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        yield con


def test_every_demo_audience_is_materialised_with_the_members_its_rule_selects(warehouse):
    compiled = compile_audiences(load_audiences(REPO_ROOT / "audiences"), read_catalogue(warehouse))
    members = warehouse.execute("select audience, person_id from audiences.audience_members").df()
    assert set(members["audience"]) <= set(compiled)
    for name, audience in compiled.items():
        expected = {row[0] for row in warehouse.execute(audience.sql, audience.params).fetchall()}
        got = set(members.loc[members["audience"] == name, "person_id"])
        assert got == expected, name
    assert not members.duplicated().any()
    assert members["audience"].nunique() >= 2, "the demo rules select someone on the test data"


def test_reach_is_recorded_per_audience_and_data_day(warehouse):
    reach = warehouse.execute("select * from audiences.audience_reach").df()
    profiles_as_of, persons = warehouse.execute(
        "select max(as_of_date), count(*) from marts.person_profiles"
    ).fetchone()
    latest = reach[reach["as_of_date"] == pd.Timestamp(profiles_as_of)]
    sizes = (
        warehouse.execute(
            "select audience, count(*) as members from audiences.audience_members group by 1"
        )
        .df()
        .set_index("audience")["members"]
    )
    assert len(latest) == len(load_audiences(REPO_ROOT / "audiences"))
    for row in latest.itertuples():
        assert row.members == sizes.get(row.audience, 0)
        assert row.persons == persons


def test_overlap_counts_persons_in_both(warehouse):
    members = warehouse.execute("select audience, person_id from audiences.audience_members").df()
    segments = warehouse.execute("select person_id, segment_name from ml.person_segments").df()
    overlap = warehouse.execute("select * from audiences.audience_overlap").df()
    pairs = members.merge(members, on="person_id", suffixes=("", "_other"))
    expected = pairs.groupby(["audience", "audience_other"]).size()
    with_segments = members.merge(segments, on="person_id")
    expected_segments = with_segments.groupby(["audience", "segment_name"]).size()
    got = overlap[overlap["other_kind"] == "audience"].set_index(["audience", "other"])
    assert got["both_members"].sort_index().tolist() == expected.sort_index().tolist()
    got_segments = overlap[overlap["other_kind"] == "segment"].set_index(["audience", "other"])
    assert (
        got_segments["both_members"].sort_index().tolist()
        == expected_segments.sort_index().tolist()
    )
    sizes = members.groupby("audience").size()
    for row in overlap.itertuples():
        assert row.share_of_audience == pytest.approx(row.both_members / sizes[row.audience])


def test_lookalikes_are_ranked_outside_their_seed(warehouse):
    members = warehouse.execute("select audience, person_id from audiences.audience_members").df()
    seed = set(members.loc[members["audience"] == "likely_fashion_buyers", "person_id"])
    ranked = warehouse.execute(
        "select person_id, rank from audiences.lookalike_members "
        "where seed_audience = 'likely_fashion_buyers'"
    ).df()
    lookalikes = set(
        members.loc[members["audience"] == "likely_fashion_buyer_lookalikes", "person_id"]
    )
    if not seed:
        assert ranked.empty and not lookalikes
        return
    assert not ranked.empty and not (set(ranked["person_id"]) & seed)
    assert lookalikes == set(ranked.loc[ranked["rank"] <= 500, "person_id"])
