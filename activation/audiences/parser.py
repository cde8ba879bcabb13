"""Audience definitions (YAML) -> checked rules: every mistake at once, each naming the file,
the audience and the place in the rule, as one AudienceError."""

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from activation.audiences.rules import (
    NAME_PATTERN,
    PROFILES,
    SCORES,
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
    ordered = in_dependency_order(audiences, problems, broken)
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
        problems.append(f"{source}: 'audiences' must be a non-empty list, got {show(entries)}")
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
            f"63 characters), got {show(name)}"
        )
        ok = False
    for key in entry:
        if key not in _AUDIENCE_KEYS:
            problems.append(f"{where}: unknown key {key!r}{suggest(key, _AUDIENCE_KEYS)}")
            ok = False
    description = entry.get("description")
    if not isinstance(description, str) or not description.strip():
        problems.append(f"{where}: description must be a non-empty text, got {show(description)}")
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


def _parse_rule(node: Any, path: str, report: Report) -> Rule | None:
    if not isinstance(node, dict) or not node:
        report(
            path, f"expected a condition such as {{trait: country, equals: FR}}, got {show(node)}"
        )
        return None
    subjects = [key for key in node if key in _SUBJECTS]
    if not subjects:
        keys = ", ".join(repr(key) for key in node)
        hints = "".join(suggest(key, _SUBJECTS) for key in node if isinstance(key, str))
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
        report(path, f"unknown key {key!r} in a {subject} condition{suggest(key, allowed)} {takes}")
    if unknown:
        return None
    value = node[subject]
    here = f"{path}.{subject}"

    if subject in ("all", "any"):
        if not isinstance(value, list) or not value:
            report(path, f"'{subject}' needs a non-empty list of conditions, got {show(value)}")
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
        report(path, f"'segment_id' needs a whole number, got {show(value)}")
        return None
    return Segment(path, "segment_id", value)


def _parse_score(node: dict, path: str, report: Report) -> Score | None:
    score = node["score"]
    if score not in SCORES:
        known = ", ".join(SCORES)
        shown = repr(score) if isinstance(score, str) else show(score)
        report(path, f"unknown score {shown}{suggest(score, SCORES)} (known: {known})")
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
        report(path, f"'trait' needs a column name of {PROFILES}, got {show(column)}")
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
            report(path, f"'is_null' needs true or false, got {show(value)}")
            return None
        return Trait(path, column, operator, value)
    if operator == "in":
        if not isinstance(value, list) or not value:
            report(path, f"'in' needs a non-empty list of values, got {show(value)}")
            return None
        bad = [i for i, item in enumerate(value) if not _is_scalar(item)]
        if bad:
            report(path, f"'in' needs plain values, got {show(value[bad[0]])} at in[{bad[0]}]")
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
            report(path, f"'between' needs a list [low, high], got {show(value)}")
            return False
        return True
    if not _is_scalar(value):
        report(path, f"'{operator}' needs a single value, got {show(value)}")
        return False
    return True


def _check_positive(node: dict, key: str, path: str, report: Report) -> bool:
    if key in node and not (_is_integer(node[key]) and node[key] >= 1):
        report(path, f"'{key}' needs a whole number of at least 1, got {show(node[key])}")
        return False
    return True


def _check_name(node: dict, key: str, path: str, report: Report) -> bool:
    if isinstance(node[key], str) and NAME_PATTERN.fullmatch(node[key]):
        return True
    report(path, f"'{key}' needs an audience name, got {show(node[key])}")
    return False


def _check_value(node: dict, key: str, path: str, report: Report) -> bool:
    value = node[key]
    if _is_scalar(value) and not isinstance(value, bool) and value != "":
        return True
    report(path, f"'{key}' needs a value, got {show(value)}")
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


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | date)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
