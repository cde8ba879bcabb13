"""Checked rules -> SQL: one parameterised SELECT per audience over the profiles, with the
warehouse's own catalogue deciding which traits exist and what values they take. Values travel
as bound parameters (`?`); the SQL is plain ANSI, so it moves to Spark or Trino."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol

from activation.audiences.rules import (
    AS_OF_COLUMN,
    INTERESTS,
    LOOKALIKE_MEMBERS,
    NAME_PATTERN,
    PROFILES,
    RECOMMENDATIONS,
    SCORES,
    SEGMENTS,
    AllOf,
    AnyOf,
    Audience,
    AudienceError,
    AudienceRef,
    Interest,
    LookalikeOf,
    Not,
    Recommended,
    Report,
    Rule,
    Score,
    Segment,
    Trait,
    in_dependency_order,
    show,
    suggest,
)

# What the lookalike asset writes: per seed audience, the persons outside it ranked by how
# much they resemble it (1 = most alike). A rule `lookalike_of: X, top: N` reads rank <= N.
LOOKALIKE_MEMBERS_DDL = (
    "create schema if not exists audiences",
    f"""create table if not exists {LOOKALIKE_MEMBERS} (
    seed_audience varchar not null,
    person_id varchar not null,
    rank bigint not null,
    score double
)""",
)

_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

# which operators each kind of column supports (is_null works on any column)
_OPERATOR_KINDS: dict[str, tuple[str, ...]] = {
    "equals": ("number", "text", "boolean", "date", "timestamp"),
    "not_equals": ("number", "text", "boolean", "date", "timestamp"),
    "in": ("number", "text", "boolean", "date", "timestamp"),
    "at_least": ("number", "date", "timestamp"),
    "at_most": ("number", "date", "timestamp"),
    "between": ("number", "date", "timestamp"),
    "within_days": ("date", "timestamp"),
    "older_than_days": ("date", "timestamp"),
}
_KIND_PHRASES = {
    "number": "a number",
    "text": "text",
    "boolean": "true/false",
    "date": "a date",
    "timestamp": "a timestamp",
}
_SQL_OPERATORS = {"equals": "=", "not_equals": "<>", "at_least": ">=", "at_most": "<="}


@dataclass(frozen=True)
class CompiledAudience:
    name: str
    description: str
    sql: str  # select p.person_id from marts.person_profiles as p where <predicate>
    params: tuple = ()  # bound in order to the `?` of sql (and of predicate)
    predicate: str = "true"  # the condition on a profile row `p`; never null
    references: tuple[str, ...] = ()


Catalogue = Mapping[str, Mapping[str, str]]  # "schema.table" -> column -> SQL type


class _Connection(Protocol):
    def execute(self, query: str, parameters: Any = ...) -> Any: ...


def read_catalogue(connection: _Connection) -> dict[str, dict[str, str]]:
    """Column types of the tables rules read ("schema.table" -> column -> SQL type), from the
    standard information_schema: a new profile column is a new trait, no code change."""
    tables = {PROFILES, INTERESTS, SEGMENTS, RECOMMENDATIONS, *(t for t, _ in SCORES.values())}
    rows = connection.execute(
        """
        select table_schema, table_name, column_name, data_type
        from information_schema.columns
        order by table_schema, table_name, ordinal_position
        """
    ).fetchall()
    catalogue: dict[str, dict[str, str]] = {}
    for schema, table, column, data_type in rows:
        name = f"{schema}.{table}".lower()
        if name in tables:
            catalogue.setdefault(name, {})[column] = str(data_type)
    return catalogue


def compile_audiences(
    audiences: Sequence[Audience], catalogue: Catalogue
) -> dict[str, CompiledAudience]:
    """One SELECT per audience, keyed by name, in dependency order. Raises AudienceError
    naming every rule that does not fit the warehouse (unknown trait, wrong value type)."""
    problems: list[str] = []
    ordered = in_dependency_order(list(audiences), problems)
    if problems:
        raise AudienceError(problems)
    catalogue = {name.lower(): columns for name, columns in catalogue.items()}
    if PROFILES not in catalogue:
        raise AudienceError([f"the warehouse has no table {PROFILES}: build the dbt models first"])
    predicates: dict[str, _Fragment] = {}
    compiled: dict[str, CompiledAudience] = {}
    for audience in ordered:
        where = f"{audience.source}: audience {audience.name!r}"
        count = len(problems)
        compiler = _Compiler(
            catalogue, predicates, lambda path, msg, w=where: problems.append(f"{w}: {path}: {msg}")
        )
        fragment = compiler.predicate(audience.rule)
        if fragment is None or len(problems) > count:
            continue
        predicates[audience.name] = fragment
        compiled[audience.name] = CompiledAudience(
            name=audience.name,
            description=audience.description,
            sql=_select("p.person_id", fragment.sql),
            params=fragment.params,
            predicate=fragment.sql,
            references=audience.references,
        )
    if problems:
        raise AudienceError(problems)
    return compiled


def membership_query(compiled: Mapping[str, CompiledAudience]) -> tuple[str, tuple]:
    """One query for every membership: columns audience, person_id (UNION ALL)."""
    if not compiled:
        empty = "select cast(null as varchar) as audience, cast(null as varchar) as person_id"
        return f"{empty}\nwhere 1 = 0", ()
    parts, params = [], []
    for name, audience in compiled.items():
        # a checked snake_case name is safe as a literal
        if not NAME_PATTERN.fullmatch(name):
            raise ValueError(f"audience name {name!r} is not snake_case")
        parts.append(_select(f"'{name}' as audience, p.person_id", audience.predicate))
        params += audience.params
    return "\nunion all\n".join(parts), tuple(params)


class _Fragment(NamedTuple):
    sql: str
    params: tuple = ()


def _select(columns: str, predicate: str) -> str:
    return f"select {columns}\nfrom {PROFILES} as p\nwhere {predicate}"


class _Compiler:
    """Rule -> SQL predicate over `p` (a marts.person_profiles row) that is never null."""

    def __init__(self, catalogue: Catalogue, audiences: Mapping[str, _Fragment], report: Report):
        self.catalogue = catalogue
        self.profiles = self.catalogue[PROFILES]
        self.audiences = audiences
        self.report = report

    def predicate(self, rule: Rule) -> _Fragment | None:
        if isinstance(rule, AllOf | AnyOf):
            parts = [self.predicate(child) for child in rule.rules]
            if any(part is None for part in parts):
                return None
            if len(parts) == 1:
                return parts[0]
            joiner = "\nand " if isinstance(rule, AllOf) else "\nor "
            body = joiner.join(part.sql for part in parts)
            return _Fragment(f"(\n{_indent(body)}\n)", sum((part.params for part in parts), ()))
        if isinstance(rule, Not):
            inner = self.predicate(rule.rule)
            return None if inner is None else _Fragment(f"not ({inner.sql})", inner.params)
        if isinstance(rule, AudienceRef):
            # membership of another audience is its predicate on the same profile row
            fragment = self.audiences.get(rule.name)
            if fragment is None:
                return None
            sql = fragment.sql if fragment.sql.startswith("(") else f"({fragment.sql})"
            return _Fragment(sql, fragment.params)
        method = {
            Trait: self.trait,
            Segment: self.segment,
            Score: self.score,
            Interest: self.interest,
            Recommended: self.recommended,
            LookalikeOf: self.lookalike,
        }[type(rule)]
        return method(rule)

    def trait(self, rule: Trait) -> _Fragment | None:
        data_type = self.profiles.get(rule.column)
        if data_type is None:
            known = ", ".join(sorted(self.profiles))
            self.report(
                rule.path,
                f"unknown trait {rule.column!r}{suggest(rule.column, self.profiles)} "
                f"(known: {known})",
            )
            return None
        column = f"p.{_identifier(rule.column)}"
        if rule.operator == "is_null":
            return _Fragment(f"{column} is {'' if rule.value else 'not '}null")
        kind = _kind(data_type)
        what = f"trait {rule.column!r}"
        if kind not in _OPERATOR_KINDS[rule.operator]:
            if kind is None:
                reason = f"has the type {data_type}, which rules can only test with is_null"
            else:
                reason = f"is {_KIND_PHRASES[kind]} ({data_type}): '{rule.operator}' does not apply"
            self.report(rule.path, f"{what} {reason}")
            return None
        if rule.operator in ("within_days", "older_than_days"):
            window = self.window(column, rule.operator, rule.value, rule.path)
            return None if window is None else _Fragment(f"coalesce({window}, false)")
        check = self.compare(column, rule.operator, rule.value, kind, data_type, what, rule.path)
        return None if check is None else _Fragment(f"coalesce({check.sql}, false)", check.params)

    def compare(
        self,
        column: str,
        operator: str,
        value: Any,
        kind: str,
        data_type: str,
        what: str,
        path: str,
    ) -> _Fragment | None:
        """`column <operator> ?` for equals/not_equals/in/at_least/at_most/between, the value
        checked against the column's kind; null when the column is (callers decide)."""
        values = value if operator in ("in", "between") else (value,)
        converted = []
        for index, item in enumerate(values):
            label = f"{operator}[{index}]" if operator in ("in", "between") else operator
            try:
                converted.append(_convert(item, kind))
            except ValueError as error:
                self.report(
                    path,
                    f"{what} is {_KIND_PHRASES[kind]} ({data_type}), but {label} got "
                    f"{show(item)}{error}",
                )
                return None
        if operator == "between":
            low, high = converted
            if low > high:
                self.report(path, f"'between' needs low <= high, got [{low}, {high}]")
                return None
            return _Fragment(f"{column} between ? and ?", (low, high))
        if operator == "in":
            marks = ", ".join("?" for _ in converted)
            return _Fragment(f"{column} in ({marks})", tuple(converted))
        return _Fragment(f"{column} {_SQL_OPERATORS[operator]} ?", tuple(converted))

    def window(self, column: str, operator: str, days: int, path: str) -> str | None:
        """Calendar days counted back from the profile's as_of_date: within_days N is the N
        days ending on it, older_than_days N every day before those."""
        as_of_type = self.profiles.get(AS_OF_COLUMN)
        if as_of_type is None:
            self.report(
                path,
                f"'{operator}' counts from {PROFILES}.{AS_OF_COLUMN}, which the warehouse lacks",
            )
            return None
        as_of = f"p.{AS_OF_COLUMN}"
        if _kind(as_of_type) != "date":
            as_of = f"cast({as_of} as date)"
        # days is a checked whole number, so it is safe as a literal
        comparison = ">" if operator == "within_days" else "<="
        return f"cast({column} as date) {comparison} {as_of} - interval '{int(days)}' day"

    def segment(self, rule: Segment) -> _Fragment | None:
        what = f"segment condition ({rule.column})"
        check = self.column_check(SEGMENTS, rule.column, rule.value, rule.path, what)
        if check is None:
            return None
        return _exists(SEGMENTS, "s", [check])

    def score(self, rule: Score) -> _Fragment | None:
        table, column = SCORES[rule.score]
        what = f"score {rule.score!r}"
        check = self.column_check(table, column, rule.value, rule.path, what, rule.operator)
        return None if check is None else _exists(table, _ALIASES[table], [check])

    def interest(self, rule: Interest) -> _Fragment | None:
        what = "interest condition"
        if not self.has_table(INTERESTS, rule.path, what):
            return None
        checks = [self.column_check(INTERESTS, "category", rule.category, rule.path, what)]
        if rule.at_least is not None:
            checks.append(
                self.column_check(
                    INTERESTS, "interest_score", rule.at_least, rule.path, what, "at_least"
                )
            )
        if rule.top is not None:
            checks.append(
                self.column_check(INTERESTS, "interest_rank", rule.top, rule.path, what, "at_most")
            )
        if rule.within_days is not None:
            if self.column_type(INTERESTS, "last_activity_at", rule.path, what) is None:
                return None
            window = self.window("i.last_activity_at", "within_days", rule.within_days, rule.path)
            checks.append(None if window is None else _Fragment(window))
        if any(check is None for check in checks):
            return None
        return _exists(INTERESTS, "i", checks)

    def recommended(self, rule: Recommended) -> _Fragment | None:
        what = "recommended condition"
        if not self.has_table(RECOMMENDATIONS, rule.path, what):
            return None
        checks = [
            self.column_check(RECOMMENDATIONS, "product_id", rule.product_id, rule.path, what)
        ]
        if rule.top is not None:
            checks.append(
                self.column_check(RECOMMENDATIONS, "rank", rule.top, rule.path, what, "at_most")
            )
        if any(check is None for check in checks):
            return None
        return _exists(RECOMMENDATIONS, "r", checks)

    def lookalike(self, rule: LookalikeOf) -> _Fragment:
        # the table is written by the lookalike asset, so it is not in the catalogue yet
        return _exists(
            LOOKALIKE_MEMBERS,
            "l",
            [_Fragment("l.seed_audience = ?", (rule.seed,)), _Fragment("l.rank <= ?", (rule.top,))],
        )

    def has_table(self, table: str, path: str, what: str) -> bool:
        if table in self.catalogue:
            return True
        self.report(path, f"{what} reads {table}, which the warehouse lacks")
        return False

    def column_type(self, table: str, column: str, path: str, what: str) -> str | None:
        data_type = self.catalogue.get(table, {}).get(column)
        if data_type is None:
            missing = table if table not in self.catalogue else f"{table}.{column}"
            self.report(path, f"{what} reads {missing}, which the warehouse lacks")
        return data_type

    def column_check(
        self, table: str, column: str, value: Any, path: str, what: str, operator: str = "equals"
    ) -> _Fragment | None:
        """`alias.column <operator> ?` in the EXISTS over `table`, the value checked against
        the column's type."""
        data_type = self.column_type(table, column, path, what)
        if data_type is None:
            return None
        kind = _kind(data_type)
        if kind not in _OPERATOR_KINDS[operator]:
            self.report(path, f"{what} reads {table}.{column} of type {data_type}, not comparable")
            return None
        alias = _ALIASES[table]
        label = f"{what} ({table}.{column})"
        # inside EXISTS a null matches no row, so the bare comparison is enough
        return self.compare(
            f"{alias}.{_identifier(column)}", operator, value, kind, data_type, label, path
        )


_ALIASES = {
    SEGMENTS: "s",
    INTERESTS: "i",
    RECOMMENDATIONS: "r",
    **{table: "sc" for table, _ in SCORES.values()},
}


def _exists(table: str, alias: str, checks: Sequence[_Fragment]) -> _Fragment:
    conditions = "".join(f"\n        and {check.sql}" for check in checks)
    sql = (
        f"exists (\n    select 1\n    from {table} as {alias}\n"
        f"    where {alias}.person_id = p.person_id{conditions}\n)"
    )
    return _Fragment(sql, sum((check.params for check in checks), ()))


def _kind(data_type: str) -> str | None:
    """number, text, boolean, date or timestamp; None for what rules cannot compare."""
    t = data_type.strip().upper()
    if any(mark in t for mark in ("[", "STRUCT", "MAP", "UNION", "ARRAY")):
        return None
    if t in ("BOOLEAN", "BOOL"):
        return "boolean"
    if t == "DATE":
        return "date"
    if t.startswith(("TIMESTAMP", "DATETIME")):
        return "timestamp"
    if t.startswith(("VARCHAR", "CHAR", "TEXT", "STRING", "NVARCHAR", "BPCHAR")):
        return "text"
    numeric = (
        "TINYINT", "SMALLINT", "INT", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
        "UBIGINT", "UHUGEINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL", "NUMERIC",
    )  # fmt: skip
    if t.startswith(numeric):
        return "number"
    return None


def _convert(value: Any, kind: str) -> Any:
    """The value as the column's kind; ValueError's message is a hint to append."""
    if kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
        raise ValueError("")
    if kind == "text":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            raise ValueError(" (YAML reads yes/no/on/off/true/false as booleans: quote the text)")
        raise ValueError(" (quote it to compare as text)")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError("")
    if kind == "date":
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        raise ValueError(" (write a date as YYYY-MM-DD)")
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(" (write a timestamp as YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)")


def _identifier(name: str) -> str:
    if _PLAIN_IDENTIFIER.fullmatch(name):
        return name
    return '"' + name.replace('"', '""') + '"'


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())
