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

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import yaml

import marts

PROFILES = marts.PERSON_PROFILES.relation
INTERESTS = marts.PERSON_INTERESTS.relation
SEGMENTS = "ml.person_segments"
RECOMMENDATIONS = "ml.recommendations"
LOOKALIKE_MEMBERS = "audiences.lookalike_members"
AS_OF_COLUMN = "as_of_date"

# score name -> (table, column): the model outputs a rule may threshold.
SCORES: dict[str, tuple[str, str]] = {
    "propensity": ("ml.propensity_scores", "probability"),
    "probability_alive": ("ml.customer_value", "probability_alive"),
    "expected_purchases_90d": ("ml.customer_value", "expected_purchases_90d"),
    "predicted_spend_90d": ("ml.customer_value", "predicted_spend_90d"),
}

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

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")

_TRAIT_OPERATORS = (
    "equals",
    "not_equals",
    "in",
    "at_least",
    "at_most",
    "between",
    "is_null",
    "within_days",
    "older_than_days",
)
_RANGE_OPERATORS = ("at_least", "at_most", "between")
# subject key -> the other keys a condition with that subject may carry
_SUBJECTS: dict[str, tuple[str, ...]] = {
    "all": (),
    "any": (),
    "not": (),
    "trait": _TRAIT_OPERATORS,
    "segment": (),
    "segment_id": (),
    "score": _RANGE_OPERATORS,
    "interest": ("at_least", "within_days", "top"),
    "recommended": ("top",),
    "audience": (),
    "lookalike_of": ("top",),
}
_AUDIENCE_KEYS = ("name", "description", "rule")

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

Catalogue = Mapping[str, Mapping[str, str]]  # "schema.table" -> column -> SQL type


class AudienceError(ValueError):
    """Everything wrong with the audience definitions, one problem a line."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems in the audience definitions:\n" + "\n".join(
                self.problems
            )
        super().__init__(message)


# ---- the parsed rule ---------------------------------------------------------------------


@dataclass(frozen=True)
class AllOf:
    path: str
    rules: tuple["Rule", ...]


@dataclass(frozen=True)
class AnyOf:
    path: str
    rules: tuple["Rule", ...]


@dataclass(frozen=True)
class Not:
    path: str
    rule: "Rule"


@dataclass(frozen=True)
class Trait:
    path: str
    column: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Segment:
    path: str
    column: str  # segment_name or segment_id
    value: Any


@dataclass(frozen=True)
class Score:
    path: str
    score: str
    operator: str
    value: Any


@dataclass(frozen=True)
class Interest:
    path: str
    category: Any
    at_least: Any = None
    within_days: int | None = None
    top: int | None = None


@dataclass(frozen=True)
class Recommended:
    path: str
    product_id: Any
    top: int | None = None


@dataclass(frozen=True)
class AudienceRef:
    path: str
    name: str


@dataclass(frozen=True)
class LookalikeOf:
    path: str
    seed: str
    top: int


Rule = (
    AllOf
    | AnyOf
    | Not
    | Trait
    | Segment
    | Score
    | Interest
    | Recommended
    | AudienceRef
    | LookalikeOf
)


@dataclass(frozen=True)
class Audience:
    name: str
    description: str
    rule: Rule
    source: str  # the file it came from, as shown in errors

    @property
    def references(self) -> tuple[str, ...]:
        """The audiences this one needs first (members or lookalike seeds), each once."""
        return tuple(dict.fromkeys(name for name, _, _ in _references(self.rule)))


@dataclass(frozen=True)
class CompiledAudience:
    name: str
    description: str
    sql: str  # select p.person_id from marts.person_profiles as p where <predicate>
    params: tuple = ()  # bound in order to the `?` of sql (and of predicate)
    predicate: str = "true"  # the condition on a profile row `p`; never null
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class LookalikeRequest:
    seed: str  # the audience whose lookalikes to find; its members are the seed
    top: int  # how many to keep: the largest `top` any rule asks of this seed
    used_by: tuple[str, ...]  # audiences whose rules read these lookalikes


# ---- loading and checking ------------------------------------------------------------------


def load_audiences(folder: str | Path) -> list[Audience]:
    """Every audience in `folder/*.yml` (and *.yaml), checked, in dependency order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AudienceError([f"{folder}: no such folder of audience definitions"])
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    return parse_audiences(
        {f"{folder.name}/{path.name}": path.read_text(encoding="utf-8") for path in files}
    )


def parse_audiences(documents: Mapping[str, str]) -> list[Audience]:
    """Audiences from YAML texts keyed by the file name to show in errors, checked together
    (names unique, references known, no cycles), in dependency order."""
    problems: list[str] = []
    audiences: list[Audience] = []
    broken: set[str] = set()  # well-named audiences with a faulty definition
    for source, text in documents.items():
        audiences += _parse_document(text, source, problems, broken)
    ordered = _check_references(audiences, problems, broken)
    if problems:
        raise AudienceError(problems)
    return ordered


def _parse_document(
    text: str, source: str, problems: list[str], broken: set[str]
) -> list[Audience]:
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problems.append(f"{source}: invalid YAML at {where}: {error.problem}")
        return []
    except yaml.YAMLError as error:
        problems.append(f"{source}: invalid YAML: {error}")
        return []
    if not isinstance(document, dict) or "audiences" not in document:
        problems.append(f"{source}: expected a mapping with the key 'audiences' (a list)")
        return []
    for key in document:
        if key != "audiences":
            problems.append(f"{source}: unknown key {key!r} (a file holds only 'audiences')")
    entries = document["audiences"]
    if not isinstance(entries, list) or not entries:
        problems.append(f"{source}: 'audiences' must be a non-empty list, got {_show(entries)}")
        return []
    audiences = []
    for index, entry in enumerate(entries):
        audience = _parse_audience(entry, f"{source}: audiences[{index}]", source, problems)
        if audience is not None:
            audiences.append(audience)
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            broken.add(entry["name"])
    return audiences


def _parse_audience(entry: Any, where: str, source: str, problems: list[str]) -> Audience | None:
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping with name, description and rule")
        return None
    name = entry.get("name")
    if isinstance(name, str) and NAME_PATTERN.fullmatch(name):
        where = f"{source}: audience {name!r}"
        ok = True
    else:
        problems.append(
            f"{where}: name must be snake_case (a-z, 0-9, _; starting with a letter; at most "
            f"63 characters), got {_show(name)}"
        )
        ok = False
    for key in entry:
        if key not in _AUDIENCE_KEYS:
            problems.append(f"{where}: unknown key {key!r}{_suggest(key, _AUDIENCE_KEYS)}")
            ok = False
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(f"{where}: description must be a non-empty text, got {_show(description)}")
        ok = False
    if "rule" not in entry:
        problems.append(f"{where}: the key 'rule' is missing")
        return None
    count = len(problems)
    rule = _parse_rule(
        entry["rule"], "rule", lambda path, msg: problems.append(f"{where}: {path}: {msg}")
    )
    if not ok or rule is None or len(problems) > count:
        return None
    return Audience(name=name, description=description.strip(), rule=rule, source=source)


Report = Callable[[str, str], None]  # (path in the rule, message)


def _parse_rule(node: Any, path: str, report: Report) -> Rule | None:
    if not isinstance(node, dict) or not node:
        report(
            path, f"expected a condition such as {{trait: country, equals: FR}}, got {_show(node)}"
        )
        return None
    subjects = [key for key in node if key in _SUBJECTS]
    if not subjects:
        keys = ", ".join(repr(key) for key in node)
        hints = "".join(_suggest(key, _SUBJECTS) for key in node if isinstance(key, str))
        report(path, f"a condition needs one of {', '.join(_SUBJECTS)}; got {keys}{hints}")
        return None
    if len(subjects) > 1:
        report(
            path,
            f"one condition per mapping, got {' and '.join(map(repr, subjects))}: "
            "combine conditions with all/any",
        )
        return None
    subject = subjects[0]
    allowed = _SUBJECTS[subject]
    unknown = [key for key in node if key != subject and key not in allowed]
    for key in unknown:
        takes = f"(it takes {', '.join(allowed)})" if allowed else "(it takes no other key)"
        report(
            path, f"unknown key {key!r} in a {subject} condition{_suggest(key, allowed)} {takes}"
        )
    if unknown:
        return None
    value = node[subject]
    here = f"{path}.{subject}"

    if subject in ("all", "any"):
        if not isinstance(value, list) or not value:
            report(path, f"'{subject}' needs a non-empty list of conditions, got {_show(value)}")
            return None
        rules = [_parse_rule(child, f"{here}[{i}]", report) for i, child in enumerate(value)]
        if any(rule is None for rule in rules):
            return None
        return (AllOf if subject == "all" else AnyOf)(path, tuple(rules))
    if subject == "not":
        rule = _parse_rule(value, here, report)
        return None if rule is None else Not(path, rule)
    return _CONDITION_PARSERS[subject](node, path, report)


def _parse_segment(node: dict, path: str, report: Report) -> Segment | None:
    value = node["segment"]
    return (
        Segment(path, "segment_name", value)
        if _check_value(node, "segment", path, report)
        else None
    )


def _parse_segment_id(node: dict, path: str, report: Report) -> Segment | None:
    value = node["segment_id"]
    if not _is_integer(value):
        report(path, f"'segment_id' needs a whole number, got {_show(value)}")
        return None
    return Segment(path, "segment_id", value)


def _parse_score(node: dict, path: str, report: Report) -> Score | None:
    score = node["score"]
    if score not in SCORES:
        known = ", ".join(SCORES)
        shown = repr(score) if isinstance(score, str) else _show(score)
        report(path, f"unknown score {shown}{_suggest(score, SCORES)} (known: {known})")
        return None
    operator = _one_operator(node, _RANGE_OPERATORS, f"score {score!r}", path, report)
    if operator is None or not _check_operand(operator, node[operator], path, report):
        return None
    return Score(path, score, operator, node[operator])


def _parse_interest(node: dict, path: str, report: Report) -> Interest | None:
    checks = [
        _check_value(node, "interest", path, report),
        _check_positive(node, "within_days", path, report),
        _check_positive(node, "top", path, report),
        "at_least" not in node or _check_operand("at_least", node["at_least"], path, report),
    ]
    if not all(checks):
        return None
    return Interest(
        path, node["interest"], node.get("at_least"), node.get("within_days"), node.get("top")
    )


def _parse_recommended(node: dict, path: str, report: Report) -> Recommended | None:
    checks = [
        _check_value(node, "recommended", path, report),
        _check_positive(node, "top", path, report),
    ]
    return Recommended(path, node["recommended"], node.get("top")) if all(checks) else None


def _parse_audience_ref(node: dict, path: str, report: Report) -> AudienceRef | None:
    return (
        AudienceRef(path, node["audience"]) if _check_name(node, "audience", path, report) else None
    )


def _parse_lookalike(node: dict, path: str, report: Report) -> LookalikeOf | None:
    if "top" not in node:
        report(path, "'lookalike_of' needs 'top': how many lookalikes to keep")
        return None
    checks = [
        _check_name(node, "lookalike_of", path, report),
        _check_positive(node, "top", path, report),
    ]
    return LookalikeOf(path, node["lookalike_of"], node["top"]) if all(checks) else None


def _parse_trait(node: dict, path: str, report: Report) -> Trait | None:
    column = node["trait"]
    if not isinstance(column, str) or not column:
        report(path, f"'trait' needs a column name of {PROFILES}, got {_show(column)}")
        return None
    operator = _one_operator(node, _TRAIT_OPERATORS, f"trait {column!r}", path, report)
    if operator is None:
        return None
    value = node[operator]
    if operator in ("within_days", "older_than_days"):
        return (
            Trait(path, column, operator, value)
            if _check_positive(node, operator, path, report)
            else None
        )
    if operator == "is_null":
        if not isinstance(value, bool):
            report(path, f"'is_null' needs true or false, got {_show(value)}")
            return None
        return Trait(path, column, operator, value)
    if operator == "in":
        if not isinstance(value, list) or not value:
            report(path, f"'in' needs a non-empty list of values, got {_show(value)}")
            return None
        bad = [i for i, item in enumerate(value) if not _is_scalar(item)]
        if bad:
            report(path, f"'in' needs plain values, got {_show(value[bad[0]])} at in[{bad[0]}]")
            return None
        return Trait(path, column, operator, tuple(value))
    if not _check_operand(operator, value, path, report):
        return None
    return Trait(path, column, operator, tuple(value) if operator == "between" else value)


def _one_operator(
    node: dict, operators: Sequence[str], what: str, path: str, report: Report
) -> str | None:
    given = [key for key in node if key in operators]
    if len(given) == 1:
        return given[0]
    if not given:
        report(path, f"{what} needs one operator: {', '.join(operators)}")
    else:
        hint = "; use between: [low, high]" if set(given) == {"at_least", "at_most"} else ""
        report(path, f"{what} takes one operator, got {' and '.join(map(repr, given))}{hint}")
    return None


def _check_operand(operator: str, value: Any, path: str, report: Report) -> bool:
    if operator == "between":
        if not (isinstance(value, list) and len(value) == 2 and all(map(_is_scalar, value))):
            report(path, f"'between' needs a list [low, high], got {_show(value)}")
            return False
        return True
    if not _is_scalar(value):
        report(path, f"'{operator}' needs a single value, got {_show(value)}")
        return False
    return True


def _check_positive(node: dict, key: str, path: str, report: Report) -> bool:
    if key in node and not (_is_integer(node[key]) and node[key] >= 1):
        report(path, f"'{key}' needs a whole number of at least 1, got {_show(node[key])}")
        return False
    return True


def _check_name(node: dict, key: str, path: str, report: Report) -> bool:
    if isinstance(node[key], str) and NAME_PATTERN.fullmatch(node[key]):
        return True
    report(path, f"'{key}' needs an audience name, got {_show(node[key])}")
    return False


def _check_value(node: dict, key: str, path: str, report: Report) -> bool:
    value = node[key]
    if _is_scalar(value) and not isinstance(value, bool) and value != "":
        return True
    report(path, f"'{key}' needs a value, got {_show(value)}")
    return False


_CONDITION_PARSERS: dict[str, Callable[[dict, str, Report], Rule | None]] = {
    "trait": _parse_trait,
    "segment": _parse_segment,
    "segment_id": _parse_segment_id,
    "score": _parse_score,
    "interest": _parse_interest,
    "recommended": _parse_recommended,
    "audience": _parse_audience_ref,
    "lookalike_of": _parse_lookalike,
}


def _references(rule: Rule) -> Iterable[tuple[str, str, str]]:
    """(audience name, path, kind) of every audience the rule reads."""
    for node in _walk(rule):
        if isinstance(node, AudienceRef):
            yield node.name, node.path, "audience"
        elif isinstance(node, LookalikeOf):
            yield node.seed, node.path, "lookalike_of"


def _check_references(
    audiences: list[Audience], problems: list[str], broken: Iterable[str] = ()
) -> list[Audience]:
    """Unique names, known references, no cycles; the audiences in dependency order (each
    after those it reads, otherwise in the order given). References to `broken` audiences
    (already reported) are not reported again."""
    broken = set(broken)
    by_name: dict[str, Audience] = {}
    for audience in audiences:
        if audience.name in by_name:
            first = by_name[audience.name].source
            problems.append(
                f"{audience.source}: audience {audience.name!r}: the name is already used "
                f"in {first}"
            )
        else:
            by_name[audience.name] = audience
    edges: dict[str, list[tuple[str, str]]] = {}
    for audience in by_name.values():
        edges[audience.name] = []
        for name, path, kind in _references(audience.rule):
            if name in by_name:
                edges[audience.name].append((name, path))
            elif name not in broken:
                problems.append(
                    f"{audience.source}: audience {audience.name!r}: {path}: {kind} "
                    f"{name!r} is not defined{_suggest(name, by_name)}"
                )

    order: list[str] = []
    state: dict[str, str] = {}  # name -> "open" while on the stack, "done" after
    stack: list[tuple[str, str]] = []  # (audience, path of its reference being followed)
    seen_cycles: set[frozenset] = set()

    def visit(name: str) -> None:
        state[name] = "open"
        for target, path in edges[name]:
            stack.append((name, path))
            if state.get(target) == "open":
                start = next(i for i, (node, _) in enumerate(stack) if node == target)
                cycle = stack[start:]
                if frozenset(node for node, _ in cycle) not in seen_cycles:
                    seen_cycles.add(frozenset(node for node, _ in cycle))
                    first, first_path = cycle[0]
                    chain = " -> ".join([*(node for node, _ in cycle), target])
                    problems.append(
                        f"{by_name[first].source}: audience {first!r}: {first_path}: "
                        f"cycle between audiences: {chain}"
                    )
            elif target not in state:
                visit(target)
            stack.pop()
        state[name] = "done"
        order.append(name)

    for name in by_name:
        if name not in state:
            visit(name)
    return [by_name[name] for name in order]


# ---- compiling -----------------------------------------------------------------------------


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
    ordered = _check_references(list(audiences), problems)
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


def lookalike_requests(audiences: Sequence[Audience]) -> list[LookalikeRequest]:
    """The lookalike rankings the rules need, one per seed audience, seeds in dependency
    order: compute the seed's members with its compiled SQL (which may read the rankings
    written before it), rank lookalikes, write them to LOOKALIKE_MEMBERS, then the next."""
    problems: list[str] = []
    ordered = _check_references(list(audiences), problems)
    if problems:
        raise AudienceError(problems)
    tops: dict[str, int] = {}
    users: dict[str, list[str]] = {}
    for audience in ordered:
        for rule in _walk(audience.rule):
            if isinstance(rule, LookalikeOf):
                tops[rule.seed] = max(tops.get(rule.seed, 0), rule.top)
                users.setdefault(rule.seed, [])
                if audience.name not in users[rule.seed]:
                    users[rule.seed].append(audience.name)
    return [
        LookalikeRequest(seed=a.name, top=tops[a.name], used_by=tuple(users[a.name]))
        for a in ordered
        if a.name in tops
    ]


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


def _walk(rule: Rule) -> Iterable[Rule]:
    yield rule
    if isinstance(rule, AllOf | AnyOf):
        for child in rule.rules:
            yield from _walk(child)
    elif isinstance(rule, Not):
        yield from _walk(rule.rule)


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
                f"unknown trait {rule.column!r}{_suggest(rule.column, self.profiles)} "
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
                    f"{_show(item)}{error}",
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


# ---- small helpers -------------------------------------------------------------------------


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


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | date)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, datetime):
        return f"the timestamp {value.isoformat(sep=' ')}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _suggest(word: Any, choices: Iterable[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (plain YAML keeps the last one silently)."""


def _mapping_without_duplicates(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)
