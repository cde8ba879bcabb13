"""Audiences: named rules over the person tables, checked up front and compiled to SQL.

An audience is data, not code: `audiences/*.yml` lists them, and the warehouse evaluates
them (one SELECT per audience), so a rule never runs row by row in Python and the same
definition works at any scale. Each file holds

    audiences:
      - name: recent_fashion_fans          # snake_case, unique across all files
        description: Fashion browsers active in the last 7 days.
        rule:
          all:
            - trait: last_seen_at
              within_days: 7
            - interest: fashion
              at_least: 5

A rule is one condition, or a combination of them:

- `all: [...]`, `any: [...]`, `not: {...}`: and, or, not (lists must not be empty).
- `trait: <column of marts.person_profiles>` with exactly one operator: `equals`,
  `not_equals`, `in: [...]`, `at_least`, `at_most`, `between: [low, high]` (inclusive),
  `is_null: true|false`, and for dates and timestamps `within_days: N` / `older_than_days: N`.
  Every column of the profiles is a trait; its type (number, text, true/false, date,
  timestamp) comes from the warehouse and the value must match it.
- `segment: <segment_name>` or `segment_id: <id>` (ml.person_segments).
- `score: <name>` with `at_least`, `at_most` or `between`: one of SCORES (ml tables).
- `interest: <category>` (marts.person_interests), optionally `at_least` (interest score),
  `within_days` (last activity in the category) and `top: N` (among the person's N strongest).
- `recommended: <product_id>` (ml.recommendations), optionally `top: N` (rank <= N).
- `audience: <name>`: a member of another audience.
- `lookalike_of: <name>` with `top: N`: among the N persons outside that audience who look
  most like it, read from LOOKALIKE_MEMBERS (written by the asset that calls
  `ml.lookalike.find_lookalikes` for each of `lookalike_requests`, seeds first).

Semantics: a condition on a missing value (a null trait, no score) is false, never unknown,
so `not` is the exact complement. Time windows count calendar days back from the profiles'
`as_of_date` (the data's own today, not the wall clock, so a rerun gives the same audience):
`within_days: 7` is the 7 days ending on as_of_date, `older_than_days: 7` is every day before
them. Text compares exactly (case matters).

Mistakes are reported all at once, each naming the file, the audience and the place in the
rule (`audiences/demo.yml: audience 'x': rule.all[1]: unknown trait 'recency' ...`), as one
AudienceError: bad YAML, unknown or duplicate keys, two operators, empty lists, bad or
duplicate names, unknown audiences, cycles between audiences (`a -> b -> a`), unknown traits
or scores and values of the wrong type.

Values travel as bound parameters (`?`), never pasted into the SQL; identifiers come from
the warehouse's own catalogue. The SQL is plain ANSI (EXISTS, COALESCE, CAST,
`interval 'N' day`), so it runs on DuckDB and moves to Spark or Trino.
"""

from activation.audiences.parser import load_audiences, parse_audiences
from activation.audiences.rules import LOOKALIKE_MEMBERS, AudienceError, lookalike_requests
from activation.audiences.sql import (
    LOOKALIKE_MEMBERS_DDL,
    compile_audiences,
    membership_query,
    read_catalogue,
)

__all__ = [
    "LOOKALIKE_MEMBERS",
    "LOOKALIKE_MEMBERS_DDL",
    "AudienceError",
    "compile_audiences",
    "load_audiences",
    "lookalike_requests",
    "membership_query",
    "parse_audiences",
    "read_catalogue",
]
