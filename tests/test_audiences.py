"""Audience definitions: mistakes are reported with their file, audience and place in the
rule; the compiled SQL selects exactly the persons an independent pandas reading of the same
rule selects on the session's warehouse; the demo audiences compile against it."""

import shutil
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd
import pytest
import yaml

from activation.audiences import (
    LOOKALIKE_MEMBERS,
    LOOKALIKE_MEMBERS_DDL,
    AudienceError,
    compile_audiences,
    load_audiences,
    lookalike_requests,
    membership_query,
    parse_audiences,
    read_catalogue,
)
from dagster_dmp.settings import REPO_ROOT

SOURCE = "audiences/test.yml"

# A hand-made catalogue: the validation tests need no warehouse.
CATALOGUE = {
    "marts.person_profiles": {
        "person_id": "VARCHAR",
        "country": "VARCHAR",
        "birth_year": "BIGINT",
        "recency_days": "BIGINT",
        "monetary": "DOUBLE",
        "consent_ads": "BOOLEAN",
        "last_seen_at": "TIMESTAMP",
        "tags": "VARCHAR[]",
        "as_of_date": "DATE",
    },
    "marts.person_interests": {
        "person_id": "VARCHAR",
        "category": "VARCHAR",
        "interest_score": "DOUBLE",
        "interest_rank": "BIGINT",
        "last_activity_at": "TIMESTAMP",
    },
    "ml.person_segments": {
        "person_id": "VARCHAR",
        "segment_id": "BIGINT",
        "segment_name": "VARCHAR",
    },
    "ml.propensity_scores": {"person_id": "VARCHAR", "probability": "DOUBLE"},
}


def audiences_yaml(*audiences: dict) -> str:
    return yaml.safe_dump({"audiences": list(audiences)}, sort_keys=False)


def one(name: str, rule, description: str = "a test audience") -> dict:
    return {"name": name, "description": description, "rule": rule}


def problems(text: str, catalogue: dict | None = CATALOGUE, source: str = SOURCE) -> str:
    """The error message for a document that must not pass (parse, then compile)."""
    with pytest.raises(AudienceError) as raised:
        audiences = parse_audiences({source: text})
        compile_audiences(audiences, catalogue)
    return str(raised.value)


# ---- validation -----------------------------------------------------------------------------


def test_unknown_trait_names_file_audience_path_and_a_suggestion():
    text = audiences_yaml(
        one(
            "likely_buyers",
            {"all": [{"trait": "country", "equals": "FR"}, {"trait": "recency", "at_most": 7}]},
        )
    )
    message = problems(text)
    assert message.startswith(
        "audiences/test.yml: audience 'likely_buyers': rule.all[1]: unknown trait 'recency' "
        "(did you mean 'recency_days'?) (known: "
    )
    assert "birth_year" in message


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (
            {"trait": "birth_year", "at_least": "1990"},
            "rule: trait 'birth_year' is a number (BIGINT), but at_least got the text '1990'",
        ),
        (
            {"trait": "country", "in": ["FR", 3]},
            "rule: trait 'country' is text (VARCHAR), but in[1] got the number 3 (quote it",
        ),
        (
            # YAML reads an unquoted NO (Norway) as false
            {"trait": "country", "equals": False},
            "but equals got the boolean false (YAML reads yes/no/on/off/true/false as booleans",
        ),
        (
            {"trait": "consent_ads", "equals": "yes"},
            "trait 'consent_ads' is true/false (BOOLEAN), but equals got the text 'yes'",
        ),
        (
            {"trait": "last_seen_at", "at_least": "last week"},
            "trait 'last_seen_at' is a timestamp (TIMESTAMP), but at_least got the text 'last week'",
        ),
        ({"trait": "country", "at_least": "FR"}, "trait 'country' is text (VARCHAR): 'at_least'"),
        ({"trait": "monetary", "within_days": 7}, "trait 'monetary' is a number (DOUBLE): 'within"),
        ({"trait": "tags", "equals": "x"}, "has the type VARCHAR[], which rules can only test"),
        ({"trait": "monetary", "between": [10, 1]}, "'between' needs low <= high, got [10, 1]"),
        ({"segment_id": "two"}, "'segment_id' needs a whole number, got the text 'two'"),
        (
            {"score": "propensity", "at_least": "high"},
            (
                "score 'propensity' (ml.propensity_scores.probability) is a number (DOUBLE), but "
                "at_least got the text 'high'"
            ),
        ),
        (
            {"score": "probability_alive", "at_least": 0.5},
            "score 'probability_alive' reads ml.customer_value, which the warehouse lacks",
        ),
        ({"recommended": "P1", "top": 3}, "reads ml.recommendations, which the warehouse lacks"),
        (
            {"interest": "fashion", "at_least": "a lot"},
            (
                "interest condition (marts.person_interests.interest_score) is a number (DOUBLE), "
                "but at_least got the text 'a lot'"
            ),
        ),
    ],
)
def test_values_are_checked_against_the_warehouse_types(condition, expected):
    message = problems(audiences_yaml(one("typed", condition)))
    assert message.startswith("audiences/test.yml: audience 'typed': rule")
    assert expected in message


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"all": [{"trait": "country", "equal": "FR"}]},
            "rule.all[0]: unknown key 'equal' in a trait condition (did you mean 'equals'?)",
        ),
        (
            {"trait": "birth_year", "at_least": 1950, "at_most": 1990},
            (
                "rule: trait 'birth_year' takes one operator, got 'at_least' and 'at_most'; use "
                "between: [low, high]"
            ),
        ),
        ({"trait": "birth_year"}, "rule: trait 'birth_year' needs one operator: equals, "),
        ({"any": []}, "rule: 'any' needs a non-empty list of conditions, got a list of 0"),
        ({"all": [{"not": {"all": []}}]}, "rule.all[0].not: 'all' needs a non-empty list"),
        (
            {"trait": "country", "equals": "FR", "segment": "x"},
            "rule: one condition per mapping, got 'trait' and 'segment'",
        ),
        ({"segmnt": "x"}, "rule: a condition needs one of all, any, not, trait, "),
        ({"segment": "x", "top": 3}, "rule: unknown key 'top' in a segment condition"),
        ({"score": "propensty", "at_least": 0.5}, "rule: unknown score 'propensty' (did you mean"),
        (
            {"trait": "last_seen_at", "within_days": 0},
            "rule: 'within_days' needs a whole number of at",
        ),
        ({"trait": "country", "is_null": "yes"}, "rule: 'is_null' needs true or false"),
        ({"trait": "country", "between": [1]}, "rule: 'between' needs a list [low, high]"),
        ({"lookalike_of": "other"}, "rule: 'lookalike_of' needs 'top'"),
        ({"audience": "Other Audience"}, "rule: 'audience' needs an audience name"),
        ("everyone", "rule: expected a condition such as {trait: country, equals: FR}"),
    ],
)
def test_rule_shape_mistakes_name_their_path(rule, expected):
    message = problems(audiences_yaml(one("shaped", rule)))
    assert f"audiences/test.yml: audience 'shaped': {expected}" in message


def test_every_problem_is_reported_at_once():
    text = audiences_yaml(
        one("empty", {"any": []}),
        {"name": "Bad Name", "description": "d", "rule": {"audience": "empty"}},
        {"name": "undescribed", "rule": {"trait": "country", "is_null": True}},
    )
    with pytest.raises(AudienceError) as raised:
        parse_audiences({SOURCE: text})
    assert raised.value.problems == [
        (
            "audiences/test.yml: audience 'empty': rule: 'any' needs a non-empty list of "
            "conditions, got a list of 0"
        ),
        (
            "audiences/test.yml: audiences[1]: name must be snake_case (a-z, 0-9, _; starting "
            "with a letter; at most 63 characters), got the text 'Bad Name'"
        ),
        (
            "audiences/test.yml: audience 'undescribed': description must be a non-empty text, "
            "got nothing"
        ),
    ]
    assert str(raised.value).startswith("3 problems in the audience definitions:\n")

    # and the warehouse checks, across audiences, in one error too
    text = audiences_yaml(
        one("first", {"all": [{"trait": "nope", "equals": 1}, {"trait": "country", "equals": 1}]}),
        one("second", {"trait": "birth_year", "at_least": "old"}),
    )
    with pytest.raises(AudienceError) as raised:
        compile_audiences(parse_audiences({SOURCE: text}), CATALOGUE)
    assert [problem.split(": ")[1:3] for problem in raised.value.problems] == [
        ["audience 'first'", "rule.all[0]"],
        ["audience 'first'", "rule.all[1]"],
        ["audience 'second'", "rule"],
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("audiences: [\n  {name: x,\n", "audiences/test.yml: invalid YAML at line 3"),
        (
            "audiences:\n  - name: x\n    name: y\n    description: d\n    rule: {audience: y}\n",
            "audiences/test.yml: invalid YAML at line 3, column 5: the key 'name' is given twice",
        ),
        ("segments: []\n", "audiences/test.yml: expected a mapping with the key 'audiences'"),
        ("audiences: []\n", "audiences/test.yml: 'audiences' must be a non-empty list"),
        (
            "audiences: [{name: x, description: d, rule: {audience: y}}]\nextra: 1\n",
            "audiences/test.yml: unknown key 'extra'",
        ),
        (
            "audiences: [{name: Likely Buyers, description: d, rule: {trait: country, is_null: true}}]",
            "audiences/test.yml: audiences[0]: name must be snake_case",
        ),
        (
            "audiences: [{name: x, descripton: d, rule: {trait: country, is_null: true}}]",
            "audiences/test.yml: audience 'x': unknown key 'descripton' (did you mean 'description'?)",
        ),
        ("audiences: [{name: x, description: d}]", "audience 'x': the key 'rule' is missing"),
    ],
)
def test_file_and_audience_mistakes(text, expected):
    assert expected in problems(text)


def test_duplicate_names_across_files():
    rule = {"trait": "country", "is_null": False}
    with pytest.raises(AudienceError) as raised:
        parse_audiences(
            {
                "audiences/a.yml": audiences_yaml(one("known", rule)),
                "audiences/b.yml": audiences_yaml(one("known", rule)),
            }
        )
    assert str(raised.value) == (
        "audiences/b.yml: audience 'known': the name is already used in audiences/a.yml"
    )


def test_unknown_audience_reference_with_suggestion():
    text = audiences_yaml(
        one("buyers", {"trait": "country", "is_null": False}),
        one("others", {"not": {"audience": "buyer"}}),
    )
    assert problems(text) == (
        "audiences/test.yml: audience 'others': rule.not: audience 'buyer' is not defined "
        "(did you mean 'buyers'?)"
    )


def test_a_broken_audience_is_not_reported_again_where_it_is_used():
    text = audiences_yaml(
        one("broken", {"trait": "country"}),
        one("user", {"audience": "broken"}),
    )
    with pytest.raises(AudienceError) as raised:
        parse_audiences({SOURCE: text})
    assert raised.value.problems == [
        (
            "audiences/test.yml: audience 'broken': rule: trait 'country' needs one operator: "
            "equals, not_equals, in, at_least, at_most, between, is_null, within_days, "
            "older_than_days"
        )
    ]


def test_cycles_between_audiences_are_found_through_references_and_lookalikes():
    text = audiences_yaml(
        one("a", {"all": [{"trait": "country", "is_null": False}, {"audience": "b"}]}),
        one("b", {"any": [{"audience": "c"}, {"trait": "birth_year", "at_least": 1990}]}),
        one("c", {"lookalike_of": "a", "top": 10}),
        one("selfish", {"not": {"audience": "selfish"}}),
        one("fine", {"audience": "c"}),
    )
    with pytest.raises(AudienceError) as raised:
        parse_audiences({SOURCE: text})
    assert raised.value.problems == [
        "audiences/test.yml: audience 'a': rule.all[1]: cycle between audiences: a -> b -> c -> a",
        (
            "audiences/test.yml: audience 'selfish': rule.not: cycle between audiences: "
            "selfish -> selfish"
        ),
    ]


def test_audiences_come_in_dependency_order_and_lookalikes_seed_first():
    text = audiences_yaml(
        one("wide", {"any": [{"audience": "core"}, {"lookalike_of": "core", "top": 50}]}),
        one("lookalikes_of_wide", {"lookalike_of": "wide", "top": 10}),
        one("core", {"trait": "birth_year", "at_least": 1990}),
        one("also_core", {"lookalike_of": "core", "top": 200}),
    )
    audiences = parse_audiences({SOURCE: text})
    assert [a.name for a in audiences] == ["core", "wide", "lookalikes_of_wide", "also_core"]
    assert audiences[1].references == ("core",)
    requests = lookalike_requests(audiences)
    assert [(r.seed, r.top, r.used_by) for r in requests] == [
        ("core", 200, ("wide", "also_core")),
        ("wide", 10, ("lookalikes_of_wide",)),
    ]
    compiled = compile_audiences(audiences, CATALOGUE)
    assert list(compiled) == ["core", "wide", "lookalikes_of_wide", "also_core"]


def test_values_are_bound_never_pasted_into_the_sql():
    hostile = "FR'; drop table marts.person_profiles; --"
    text = audiences_yaml(one("safe", {"trait": "country", "in": [hostile, "DE"]}))
    compiled = compile_audiences(parse_audiences({SOURCE: text}), CATALOGUE)["safe"]
    assert hostile not in compiled.sql and "drop" not in compiled.sql
    assert compiled.params == (hostile, "DE")
    with duckdb.connect() as con:
        con.execute("create schema marts")
        con.execute("create table marts.person_profiles (person_id varchar, country varchar)")
        con.execute("insert into marts.person_profiles values ('p1', ?), ('p2', 'DE')", [hostile])
        assert sorted(con.execute(compiled.sql, compiled.params).fetchall()) == [("p1",), ("p2",)]


def test_load_audiences_reads_a_folder_and_names_its_files(tmp_path):
    folder = tmp_path / "audiences"
    folder.mkdir()
    (folder / "a.yml").write_text(audiences_yaml(one("a", {"trait": "country", "equals": "FR"})))
    (folder / "b.yaml").write_text(audiences_yaml(one("b", {"audience": "nobody"})))
    with pytest.raises(AudienceError, match=r"^audiences/b\.yaml: audience 'b': rule: audience"):
        load_audiences(folder)
    (folder / "b.yaml").unlink()
    assert [a.name for a in load_audiences(folder)] == ["a"]
    with pytest.raises(AudienceError, match="no such folder"):
        load_audiences(tmp_path / "missing")


# ---- the compiled SQL against an independent reading on the real warehouse -------------------


@dataclass
class Tables:
    profiles: pd.DataFrame
    interests: pd.DataFrame
    segments: pd.DataFrame
    propensity: pd.DataFrame
    recommendations: pd.DataFrame
    catalogue: dict


@pytest.fixture(scope="module")
def tables(pipeline_run) -> Tables:
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:

        def frame(table: str) -> pd.DataFrame:
            return con.execute(f"select * from {table}").df()

        return Tables(
            profiles=frame("marts.person_profiles"),
            interests=frame("marts.person_interests"),
            segments=frame("ml.person_segments"),
            propensity=frame("ml.propensity_scores"),
            recommendations=frame("ml.recommendations"),
            catalogue=read_catalogue(con),
        )


def oracle(rule: dict, t: Tables, members: dict[str, set]) -> set:
    """The persons a rule selects, read straight from its definition with pandas."""
    p = t.profiles
    everyone = set(p["person_id"])
    if "all" in rule:
        return set.intersection(*(oracle(child, t, members) for child in rule["all"]))
    if "any" in rule:
        return set.union(*(oracle(child, t, members) for child in rule["any"]))
    if "not" in rule:
        return everyone - oracle(rule["not"], t, members)
    if "audience" in rule:
        return members[rule["audience"]]
    if "trait" in rule:
        values = p[rule["trait"]]
        known = values.notna()

        def days_ago() -> pd.Series:  # whole calendar days before the data's today
            return (p["as_of_date"] - values.dt.floor("D")).dt.days

        tests = {
            "equals": lambda v: known & (values == v),
            "not_equals": lambda v: known & (values != v),
            "in": lambda v: values.isin(v),
            "at_least": lambda v: known & (values >= v),
            "at_most": lambda v: known & (values <= v),
            "between": lambda v: known & values.between(*v),
            "is_null": lambda v: values.isna() == v,
            "within_days": lambda v: known & (days_ago() < v),
            "older_than_days": lambda v: known & (days_ago() >= v),
        }
        (operator,) = set(rule) & set(tests)
        value = rule[operator]
        if isinstance(value, date):
            value = pd.Timestamp(value)
        return set(p.loc[tests[operator](value).to_numpy(), "person_id"])
    if "segment" in rule:
        return set(t.segments.loc[t.segments["segment_name"] == rule["segment"], "person_id"])
    if "segment_id" in rule:
        return set(t.segments.loc[t.segments["segment_id"] == rule["segment_id"], "person_id"])
    if "score" in rule:
        assert rule["score"] == "propensity"
        low, high = rule["between"]
        scores = t.propensity
        return set(scores.loc[scores["probability"].between(low, high), "person_id"])
    if "interest" in rule:
        i = t.interests.merge(p[["person_id", "as_of_date"]], on="person_id")
        keep = i["category"] == rule["interest"]
        keep &= i["interest_score"] >= rule.get("at_least", float("-inf"))
        keep &= i["interest_rank"] <= rule.get("top", 10**9)
        if "within_days" in rule:
            keep &= (i["as_of_date"] - i["last_activity_at"].dt.floor("D")).dt.days < rule[
                "within_days"
            ]
        return set(i.loc[keep, "person_id"])
    if "recommended" in rule:
        r = t.recommendations
        keep = (r["product_id"] == rule["recommended"]) & (r["rank"] <= rule.get("top", 10**9))
        return set(r.loc[keep, "person_id"])
    raise AssertionError(f"the oracle does not know {rule}")


def rules_for(t: Tables) -> dict[str, dict]:
    """Rules over values taken from the data, so every audience is a real subset."""
    p = t.profiles
    countries = p["country"].value_counts().index.tolist()
    interests = t.interests
    category = interests["category"].value_counts().index[0]
    segment = t.segments["segment_name"].value_counts().index[0]
    segment_id = int(t.segments["segment_id"].value_counts().index[1])
    product = t.recommendations.loc[t.recommendations["rank"] <= 5, "product_id"].mode()[0]
    low, high = t.propensity["probability"].quantile([0.25, 0.75]).round(4).tolist()
    median_engagement = round(float(p["engagement_score"].median()), 4)
    first_seen = p["first_seen_at"].dropna().sort_values()
    middle_day = first_seen.iloc[len(first_seen) // 2].date()
    return {
        "text_equals": {"trait": "rfm_segment", "equals": p["rfm_segment"].mode()[0]},
        "text_not_equals": {"trait": "country", "not_equals": countries[0]},
        "booleans_and_nulls": {
            "any": [{"trait": "consent_ads", "equals": True}, {"trait": "country", "is_null": True}]
        },
        "combined": {
            "all": [
                {
                    "any": [
                        {"trait": "engagement_score", "at_least": median_engagement},
                        {"trait": "frequency", "at_least": 1},
                    ]
                },
                {"not": {"trait": "country", "in": countries[:2]}},
                {"trait": "birth_year", "between": [1960, 1995]},
            ]
        },
        "seen_this_week": {"trait": "last_seen_at", "within_days": 7},
        "not_seen_this_week": {"trait": "last_seen_at", "older_than_days": 7},
        "new_since": {"trait": "first_seen_at", "at_least": middle_day},
        "in_segment": {"segment": segment},
        "in_segment_id": {"segment_id": segment_id},
        "mid_propensity": {"score": "propensity", "between": [low, high]},
        "recent_interest": {
            "interest": category,
            "at_least": round(float(interests["interest_score"].median()), 4),
            "within_days": 14,
            "top": 2,
        },
        "any_interest": {"interest": category},
        "recommended_product": {"recommended": product, "top": 5},
        "segment_but_not_this_week": {
            "all": [{"audience": "in_segment"}, {"not": {"audience": "seen_this_week"}}]
        },
    }


@pytest.fixture(scope="module")
def compiled_rules(tables):
    rules = rules_for(tables)
    audiences = parse_audiences({SOURCE: audiences_yaml(*(one(n, r) for n, r in rules.items()))})
    return rules, compile_audiences(audiences, tables.catalogue)


def test_compiled_sql_selects_what_the_rule_says(pipeline_run, tables, compiled_rules):
    rules, compiled = compiled_rules
    expected: dict[str, set] = {}
    everyone = set(tables.profiles["person_id"])
    with duckdb.connect(str(pipeline_run.duckdb_path), read_only=True) as con:
        for name, audience in compiled.items():
            expected[name] = oracle(rules[name], tables, expected)
            rows = [row[0] for row in con.execute(audience.sql, audience.params).fetchall()]
            assert len(rows) == len(set(rows)), f"{name}: a person appears twice"
            assert set(rows) == expected[name], f"{name}:\n{audience.sql}\n{audience.params}"
            assert 0 < len(rows) < len(everyone), f"{name} selects {len(rows)}: not a real test"
        sql, params = membership_query(compiled)
        memberships = con.execute(sql, params).df()
    assert {
        name: set(group["person_id"]) for name, group in memberships.groupby("audience")
    } == expected
    # a missing value is neither in nor out of a comparison: `not` is the exact complement
    assert expected["seen_this_week"] | expected["not_seen_this_week"] == set(
        tables.profiles.loc[tables.profiles["last_seen_at"].notna(), "person_id"]
    )
    assert not expected["seen_this_week"] & expected["not_seen_this_week"]
    assert tables.profiles["country"].isna().any()


def test_lookalike_rules_read_the_lookalike_table(pipeline_run, tables, tmp_path):
    copy = tmp_path / "warehouse.duckdb"
    shutil.copyfile(pipeline_run.duckdb_path, copy)
    text = audiences_yaml(
        one("seed", {"trait": "frequency", "at_least": 1}),
        one("alike", {"lookalike_of": "seed", "top": 3}),
        one(
            "alike_abroad",
            {
                "all": [
                    {"lookalike_of": "seed", "top": 4},
                    {"not": {"trait": "country", "is_null": True}},
                ]
            },
        ),
    )
    audiences = parse_audiences({SOURCE: text})
    compiled = compile_audiences(audiences, tables.catalogue)
    assert [(r.seed, r.top) for r in lookalike_requests(audiences)] == [("seed", 4)]
    p = tables.profiles
    outside = p.loc[p["frequency"] < 1].sort_values("person_id")
    with_country = outside.loc[outside["country"].notna(), "person_id"].tolist()
    without = outside.loc[outside["country"].isna(), "person_id"].tolist()
    ranked = [with_country[0], without[0], with_country[1], with_country[2], with_country[3]]
    with duckdb.connect(str(copy)) as con:
        for statement in LOOKALIKE_MEMBERS_DDL:
            con.execute(statement)
        rows = [("seed", person, rank, 1.0 / rank) for rank, person in enumerate(ranked, start=1)]
        rows.append(("another_seed", with_country[4], 1, 0.9))  # other seeds do not count
        con.executemany(f"insert into {LOOKALIKE_MEMBERS} values (?, ?, ?, ?)", rows)

        def members(name: str) -> set:
            audience = compiled[name]
            return {row[0] for row in con.execute(audience.sql, audience.params).fetchall()}

        assert members("alike") == set(ranked[:3])
        assert members("alike_abroad") == {ranked[0], ranked[2], ranked[3]}


def test_demo_audiences_compile_against_the_warehouse(tables):
    audiences = load_audiences(REPO_ROOT / "audiences")
    names = [a.name for a in audiences]
    assert len(names) == 3
    compiled = compile_audiences(audiences, tables.catalogue)
    assert list(compiled) == names
    assert [(r.seed, r.top) for r in lookalike_requests(audiences)] == [
        ("likely_fashion_buyers", 500)
    ]
    assert all(a.description for a in audiences)
    # time windows count from the data's own today, so a rerun selects the same persons
    sql = membership_query(compiled)[0]
    assert "as_of_date - interval '7' day" in sql and "current_" not in sql
