"""The audience rule model: the conditions a rule combines, the audiences that hold them, the
tables they read and the checks that span audiences (unique names, known references, no
cycles). The rule language itself is described in the package's docstring (__init__.py)."""

import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

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

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")

Report = Callable[[str, str], None]  # (path in the rule, message)


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
        return tuple(dict.fromkeys(name for name, _, _ in referenced(self.rule)))


@dataclass(frozen=True)
class LookalikeRequest:
    seed: str  # the audience whose lookalikes to find; its members are the seed
    top: int  # how many to keep: the largest `top` any rule asks of this seed
    used_by: tuple[str, ...]  # audiences whose rules read these lookalikes


def referenced(rule: Rule) -> Iterable[tuple[str, str, str]]:
    """(audience name, path, kind) of every audience the rule reads."""
    for node in walk(rule):
        if isinstance(node, AudienceRef):
            yield node.name, node.path, "audience"
        elif isinstance(node, LookalikeOf):
            yield node.seed, node.path, "lookalike_of"


def in_dependency_order(
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
        for name, path, kind in referenced(audience.rule):
            if name in by_name:
                edges[audience.name].append((name, path))
            elif name not in broken:
                problems.append(
                    f"{audience.source}: audience {audience.name!r}: {path}: {kind} "
                    f"{name!r} is not defined{suggest(name, by_name)}"
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


def lookalike_requests(audiences: Sequence[Audience]) -> list[LookalikeRequest]:
    """The lookalike rankings the rules need, one per seed audience, seeds in dependency
    order: compute the seed's members with its compiled SQL (which may read the rankings
    written before it), rank lookalikes, write them to LOOKALIKE_MEMBERS, then the next."""
    problems: list[str] = []
    ordered = in_dependency_order(list(audiences), problems)
    if problems:
        raise AudienceError(problems)
    tops: dict[str, int] = {}
    users: dict[str, list[str]] = {}
    for audience in ordered:
        for rule in walk(audience.rule):
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


def walk(rule: Rule) -> Iterable[Rule]:
    yield rule
    if isinstance(rule, AllOf | AnyOf):
        for child in rule.rules:
            yield from walk(child)
    elif isinstance(rule, Not):
        yield from walk(rule.rule)


def show(value: Any) -> str:
    """A value as an error message names it: its kind with it, since YAML guesses kinds."""
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


def suggest(word: Any, choices: Iterable[str]) -> str:
    """A hint for a near miss: " (did you mean 'x'?)", or nothing."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
