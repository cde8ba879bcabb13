"""The marts are the warehouse's interface: no Python module reads below them.

Every string literal (f-strings with their `{...}` parts as written; docstrings and comments
aside) of every .py file of the repository is scanned for SQL that reads a raw, staging or
intermediate relation: `from` / `join` followed by one of those schemas (`raw`, dlt's
`raw_staging`, `staging`, `intermediate`, or `{RAW_DATASET}`, the name ingestion gives the raw
schema) or by an unqualified dbt staging / intermediate model (`stg_...`, `int_...`). A
`delete from` is a write, not a read; `information_schema` reads are metadata and pass.
Mart relations are spelled once, in marts/__init__.py: elsewhere a `from marts.<name>` fails
too.

Not scanned: dbt_project/ (where those relations live), tests/ (they check the dbt models
below the marts on purpose) and bench/ (it measures stages and checks them against the
generator's truth). ingestion/ is scanned: it writes the raw schema and reads back only its
own bookkeeping through a dataset argument, which the scan does not see as a raw read.
"""

import ast
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dagster_dmp.settings import REPO_ROOT

NOT_SCANNED = {"dbt_project", "tests", "bench"}
BELOW_MARTS = re.compile(
    r"""
    (?<!delete\s)\b(?:from|join)\s+
    (?P<relation>
        (?:"?(?:raw|raw_staging|raw_quarantine|staging|intermediate)"?|"?\{RAW_DATASET\}"?)
            \s*\.\s*[\w"{}.\[\]]+
      | "?(?:stg|int)_\w+
    )
    """,
    re.IGNORECASE | re.VERBOSE,
)
MART_LITERAL = re.compile(r"\b(?:from|join)\s+(?P<relation>\"?marts\"?\s*\.\s*\w+)", re.IGNORECASE)
MARTS_MODULE = "marts/__init__.py"

# Reads of raw relations that are the ingestion's own bookkeeping or that must reach every
# layer, each with the relation it reads: anything else in these files still fails.
ALLOWED_READS = {
    ("dagster_dmp/assets/ingestion.py", "{RAW_DATASET}.{channel.files_table}"): (
        "the landing-file check reads ingestion's own file ledger (raw.landing_files_*), "
        "which the ingestion it guards writes"
    ),
    ("ingestion/lake.py", "{RAW_DATASET}.{channel.table}"): (
        "with DMP_ENGINE=spark ingestion copies the raw table it has just merged to the lake, "
        "where dbt on Spark reads it"
    ),
    ("privacy/erasure.py", "{RAW_DATASET}.{CHANNELS[folder].table}"): (
        "erasure finds a person's clear identifiers in the raw tables to delete them there; "
        "it has to reach every layer"
    ),
}
# Modules not moved onto the marts yet, read as a whole: remove an entry once its module
# reads marts only (this test then fails until it is removed).
NOT_YET_ON_MARTS = {
    "dagster_dmp/assets/reports.py": "report roll-ups move to marts next",
}


@dataclass(frozen=True)
class Read:
    path: str
    line: int
    relation: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: reads {self.relation}"


def python_files(root: Path) -> list[Path]:
    """Every .py file under root, outside hidden folders and NOT_SCANNED."""
    found = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders[:] = [
            name
            for name in subfolders
            if not name.startswith(".")
            and not (here == root and name in NOT_SCANNED)
            and name != "__pycache__"
        ]
        found += [here / name for name in files if name.endswith(".py")]
    return sorted(found)


def string_literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal but docstrings and other bare string statements;
    an f-string's replacement fields are kept as written (`{RAW_DATASET}`)."""
    tree = ast.parse(source)
    bare = {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant | ast.JoinedStr)
    }
    inside_fstrings = {
        id(part)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for part in ast.walk(node)
        if part is not node
    }
    literals = []
    for node in ast.walk(tree):
        if id(node) in bare or id(node) in inside_fstrings:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            literals.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):
            text = "".join(
                part.value
                if isinstance(part, ast.Constant)
                else "{" + ast.unparse(part.value) + "}"
                for part in node.values
            )
            literals.append((node.lineno, text))
    return literals


def reads(path: str, source: str, pattern: re.Pattern) -> list[Read]:
    """The relations `pattern` finds in the module's string literals, with their lines."""
    found = []
    for line, text in string_literals(source):
        for match in pattern.finditer(text):
            offset = text.count("\n", 0, match.start())
            relation = re.sub(r"\s+", "", match.group("relation"))
            found.append(Read(path, line + offset, relation))
    return found


def repository_reads(pattern: re.Pattern) -> list[Read]:
    return [
        read
        for file in python_files(REPO_ROOT)
        for read in reads(file.relative_to(REPO_ROOT).as_posix(), file.read_text(), pattern)
    ]


def test_the_scan_finds_reads_below_the_marts_and_nothing_else():
    source = '''
"""A docstring that says: select * from raw.web_events."""
RAW_DATASET = "raw"
A = "select * from raw.web_events"
B = """
    select person_id
    from intermediate.int_activities_attributed as a
    left join "staging"."stg_shop__products" as p on true
"""
C = f"select status from {RAW_DATASET}.{table} where x"
D = "select 1 from " "int_orders_aggregated"
E = "select * from marts.person_profiles join ml.person_segments using (person_id)"
F = "select table_name from information_schema.tables where table_schema = 'raw'"
G = "delete from intermediate.int_person_ids_assigned where person_id = ?"
H = "the raw data, read from staging files"  # prose: no relation after the schema
# select * from raw.products (a comment)
'''
    found = {(read.line, read.relation) for read in reads("x.py", source, BELOW_MARTS)}
    assert found == {
        (4, "raw.web_events"),
        (7, "intermediate.int_activities_attributed"),
        (8, '"staging"."stg_shop__products"'),
        (10, "{RAW_DATASET}.{table}"),
        (11, "int_orders_aggregated"),
    }
    assert [read.relation for read in reads("x.py", source, MART_LITERAL)] == [
        "marts.person_profiles"
    ]


def test_no_python_module_reads_raw_staging_or_intermediate_relations():
    found = repository_reads(BELOW_MARTS)
    unexpected = [
        str(read)
        for read in found
        if (read.path, read.relation) not in ALLOWED_READS and read.path not in NOT_YET_ON_MARTS
    ]
    assert not unexpected, (
        "Python reads the warehouse through the dbt marts (marts/__init__.py); move these "
        "reads into a mart:\n" + "\n".join(unexpected)
    )
    # An exception nobody needs any more goes, so the list shows what is left to do.
    stale = [
        *(
            f"{path} {relation}"
            for path, relation in ALLOWED_READS
            if not _reads(found, path, relation)
        ),
        *(path for path in NOT_YET_ON_MARTS if not _reads(found, path)),
    ]
    assert not stale, f"exceptions that match no read any more: {stale}"


def test_mart_relations_are_named_only_in_the_marts_module():
    found = repository_reads(MART_LITERAL)
    spelled = [str(read) for read in found if read.path not in (MARTS_MODULE, *NOT_YET_ON_MARTS)]
    assert not spelled, (
        "name a mart through marts/__init__.py (e.g. f'from {marts.PERSON_PROFILES}'):\n"
        + "\n".join(spelled)
    )


def _reads(found: list[Read], path: str, relation: str | None = None) -> bool:
    return any(
        read.path == path and (relation is None or read.relation == relation) for read in found
    )
