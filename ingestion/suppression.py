"""The suppression list: identifiers of erased persons, which ingestion never loads again.

Landing files are the sources' own copies and stay as they are; a person who asked to be
forgotten must not come back from them. The list keeps no identifier: each entry is
SHA-256(salt | identifier type | canonical value), the salt a secret from the environment
(DMP_PRIVACY_SALT), so the list cannot be matched against anything without it. Canonical
values are the warehouse's own (dbt_project/macros/normalise.sql): trimmed ids, the SHA-256 of
the lower-cased e-mail, of the phone's digits, the lower-cased @handle.
"""

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SALT_ENV = "DMP_PRIVACY_SALT"
LIST_FILE = "suppressed_identifiers.jsonl"

# identifier type -> SQL giving its canonical value from a raw text value {v}
CANONICAL_SQL = {
    "anonymous_id": "nullif(trim({v}), '')",
    "device_id": "nullif(trim({v}), '')",
    "user_id": "nullif(trim({v}), '')",
    "customer_id": "nullif(trim({v}), '')",
    "email_sha256": "sha256(nullif(lower(trim({v})), ''))",
    "phone_sha256": "sha256(nullif(regexp_replace({v}, '[^0-9]', '', 'g'), ''))",
    "social_handle": (
        "case when nullif(lower(trim({v})), '') like '@%' then lower(trim({v}))"
        " when nullif(lower(trim({v})), '') is not null then '@' || lower(trim({v})) end"
    ),
}

# landing folder -> raw field -> the identifier type it holds
IDENTIFIER_FIELDS = {
    "web_events": {"anonymous_id": "anonymous_id", "user_id": "user_id"},
    "app_events": {"device_id": "device_id", "user_id": "user_id"},
    "social": {"handle": "social_handle"},
    "crm_customers": {
        "customer_id": "customer_id",
        "email": "email_sha256",
        "phone": "phone_sha256",
        "user_id": "user_id",
        "social_handle": "social_handle",
    },
    "orders": {"customer_id": "customer_id", "user_id": "user_id", "email": "email_sha256"},
    "campaign_touches": {"customer_id": "customer_id", "anonymous_id": "anonymous_id"},
}


@dataclass(frozen=True)
class Suppression:
    salt: str
    keys: frozenset[str]

    def match_sql(self, folder: str, keys_table: str, columns: Iterable[str]) -> str | None:
        """A predicate true for a raw row (text `columns`) holding a suppressed identifier,
        or None when the channel holds none. `keys_table` has one column `key`."""
        present = set(columns)
        fields = {
            name: kind
            for name, kind in IDENTIFIER_FIELDS.get(folder, {}).items()
            if name in present
        }
        if not fields:
            return None
        salt = "'" + self.salt.replace("'", "''") + "'"
        tests = [
            f"coalesce(sha256({salt} || '|{kind}|' || "
            f"{CANONICAL_SQL[kind].format(v=_quoted(name))}) in (select key from {keys_table}), "
            "false)"
            for name, kind in fields.items()
        ]
        return "(" + " or ".join(tests) + ")"


def suppression_key(salt: str, identifier_type: str, canonical_value: str) -> str:
    return hashlib.sha256(f"{salt}|{identifier_type}|{canonical_value}".encode()).hexdigest()


def privacy_salt() -> str:
    salt = os.environ.get(SALT_ENV, "")
    if len(salt) < 16:
        raise ValueError(
            f"{SALT_ENV} must hold a secret of at least 16 characters (it keys the suppression "
            "list and the erasure audit; keep it out of the repository)"
        )
    return salt


def load_suppression(folder: Path) -> Suppression | None:
    """The list in `folder`, or None when nobody has been erased."""
    path = Path(folder) / LIST_FILE
    if not path.exists():
        return None
    keys = frozenset(json.loads(line)["key"] for line in path.read_text().splitlines() if line)
    return Suppression(privacy_salt(), keys) if keys else None


def add_to_suppression(
    folder: Path, salt: str, identifiers: Iterable[tuple[str, str]], request_id: str
) -> int:
    """Append (identifier type, canonical value) pairs; returns how many were new."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LIST_FILE
    known = load_suppression(folder)
    existing = known.keys if known else frozenset()
    new = sorted(
        {suppression_key(salt, kind, value) for kind, value in identifiers} - set(existing)
    )
    with path.open("a") as handle:
        for key in new:
            handle.write(json.dumps({"key": key, "request_id": request_id}) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return len(new)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
