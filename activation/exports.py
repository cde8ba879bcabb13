"""Deliver audiences to destinations: the files ad platforms and e-mail tools take (hashed
identifiers only), the members added and removed since the last delivery, and a manifest.

A destination (destinations/*.yml) names its purpose, file format, the identifiers
each row carries and the audiences it receives:

    destinations:
      - name: ads_demo
        purpose: ads            # ads -> consent_ads, email -> consent_email
        format: csv             # csv or parquet
        identifiers: [email_sha256, device_id_sha256]
        audiences: [likely_fashion_buyers]

Only persons whose consent covers the purpose are exported (consent is read from the profiles
at every run, so a withdrawal shows as a removal in the next diff). Identifiers leave as
SHA-256 hex: e-mails and phones are hashed after normalising at staging, device ids here.

Per destination and audience, under `<exports>/<destination>/<audience>/`:
    members.<format>              the current members (identifier_type, identifier_value)
    changes/<stamp>.added.<format>, changes/<stamp>.removed.<format>   only when they changed
    manifest.json                 every delivery: time, rows, added, removed, file checksums
Every file is written under a temporary name and renamed into place, the manifest last, so a
reader never sees half a delivery. An unchanged audience writes nothing.
"""

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

import marts

PURPOSES = {"ads": "consent_ads", "email": "consent_email"}
FORMATS = ("csv", "parquet")
# exported identifier -> the warehouse identifier it comes from, and whether we hash it here
IDENTIFIERS = {
    "email_sha256": ("email_sha256", False),
    "phone_sha256": ("phone_sha256", False),
    "device_id_sha256": ("device_id", True),
}
MEMBER_COLUMNS = ["identifier_type", "identifier_value"]
_KEYS = ("name", "purpose", "format", "identifiers", "audiences")


class DestinationError(ValueError):
    """Destination definitions that cannot be used, every problem named."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Destination:
    name: str
    purpose: str
    format: str
    identifiers: tuple[str, ...]
    audiences: tuple[str, ...]

    @property
    def consent_column(self) -> str:
        return PURPOSES[self.purpose]


@dataclass
class Delivery:
    destination: str
    audience: str
    rows: int
    added: int
    removed: int
    files: dict[str, str] = field(default_factory=dict)  # written file -> sha256

    @property
    def changed(self) -> bool:
        return bool(self.files)


def load_destinations(folder: str | Path, audiences: set[str]) -> list[Destination]:
    """The destinations in `folder/*.yml`, checked against the audiences that exist."""
    folder = Path(folder)
    destinations: list[Destination] = []
    for path in sorted(folder.glob("*.yml")) if folder.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        destinations += parse_destinations(text, f"{folder.name}/{path.name}", audiences)
    names = [destination.name for destination in destinations]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DestinationError([f"destination {name!r} is defined twice" for name in twice])
    return destinations


def parse_destinations(text: str, source: str, audiences: set[str]) -> list[Destination]:
    problems: list[str] = []
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise DestinationError([f"{source}: not valid YAML: {error}"]) from error
    entries = document.get("destinations") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise DestinationError([f"{source}: expected a list under 'destinations'"])
    destinations, names = [], set()
    for index, entry in enumerate(entries):
        where = f"{source}: destinations[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        where = f"{source}: destination {entry.get('name', index)!r}"
        unknown = sorted(set(entry) - set(_KEYS))
        missing = [key for key in _KEYS if key not in entry]
        if unknown or missing:
            problems += [f"{where}: unknown key {key!r}" for key in unknown]
            problems += [f"{where}: missing {key!r}" for key in missing]
            continue
        name = entry["name"]
        if not isinstance(name, str) or not name.replace("_", "").isalnum() or name in names:
            problems.append(f"{where}: name must be unique, letters, digits and _")
        names.add(name)
        if entry["purpose"] not in PURPOSES:
            problems.append(f"{where}: purpose must be one of {', '.join(PURPOSES)}")
        if entry["format"] not in FORMATS:
            problems.append(f"{where}: format must be one of {', '.join(FORMATS)}")
        identifiers = _names(entry["identifiers"], where, "identifiers", problems)
        problems += [
            f"{where}: unknown identifier {identifier!r} (known: {', '.join(IDENTIFIERS)})"
            for identifier in identifiers
            if identifier not in IDENTIFIERS
        ]
        wanted = _names(entry["audiences"], where, "audiences", problems)
        problems += [
            f"{where}: unknown audience {audience!r}"
            for audience in wanted
            if audience not in audiences
        ]
        destinations.append(
            Destination(name, entry["purpose"], entry["format"], identifiers, wanted)
        )
    if problems:
        raise DestinationError(problems)
    return destinations


def _names(value: Any, where: str, key: str, problems: list[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: {key} must be a non-empty list of names")
        return ()
    return tuple(value)


def members_query(destination: Destination) -> tuple[str, tuple]:
    """Consented members of the destination's audiences with the identifiers it takes:
    columns audience, identifier_type (warehouse type), identifier_value."""
    audiences = ", ".join("?" for _ in destination.audiences)
    types = ", ".join("?" for _ in destination.identifiers)
    sql = f"""
        select distinct m.audience, i.identifier_type, i.identifier_value
        from audiences.audience_members as m
        join {marts.PERSON_PROFILES} as p on p.person_id = m.person_id
        join {marts.PERSON_IDENTIFIERS} as i on i.person_id = m.person_id
        where m.audience in ({audiences})
            and p.{destination.consent_column} = true
            and i.identifier_type in ({types})
    """
    sources = tuple(IDENTIFIERS[identifier][0] for identifier in destination.identifiers)
    return sql, (*destination.audiences, *sources)


def exported_identifiers(rows: pd.DataFrame) -> pd.DataFrame:
    """Warehouse identifiers as the destination receives them: hashed, named, sorted."""
    by_source = {source: (name, hashed) for name, (source, hashed) in IDENTIFIERS.items()}
    out = pd.DataFrame(
        {
            "identifier_type": [by_source[kind][0] for kind in rows["identifier_type"]],
            "identifier_value": [
                _sha256(value) if by_source[kind][1] else value
                for kind, value in zip(rows["identifier_type"], rows["identifier_value"])
            ],
        },
        columns=MEMBER_COLUMNS,
    )
    return out.drop_duplicates().sort_values(MEMBER_COLUMNS, ignore_index=True)


def _sha256(value: str) -> str:
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()


def deliver(
    members: pd.DataFrame, destination: Destination, audience: str, out_dir: Path, at: datetime
) -> Delivery:
    """Write the audience's members for the destination if they changed since the last
    delivery: snapshot, added and removed files, then the manifest entry."""
    folder = Path(out_dir) / destination.name / audience
    snapshot = folder / f"members.{destination.format}"
    current = members[MEMBER_COLUMNS].drop_duplicates().sort_values(MEMBER_COLUMNS)
    previous = (
        _read(snapshot, destination.format)
        if snapshot.exists()
        else pd.DataFrame(columns=MEMBER_COLUMNS)
    )
    keys_now = set(map(tuple, current.to_numpy().tolist()))
    keys_before = set(map(tuple, previous.to_numpy().tolist()))
    added = pd.DataFrame(sorted(keys_now - keys_before), columns=MEMBER_COLUMNS)
    removed = pd.DataFrame(sorted(keys_before - keys_now), columns=MEMBER_COLUMNS)
    delivery = Delivery(destination.name, audience, len(current), len(added), len(removed))
    if snapshot.exists() and added.empty and removed.empty:
        return delivery
    stamp = at.strftime("%Y%m%dT%H%M%S%fZ")
    for name, frame in (
        (f"changes/{stamp}.added.{destination.format}", added),
        (f"changes/{stamp}.removed.{destination.format}", removed),
        (snapshot.name, current),
    ):
        delivery.files[name] = _write(frame, folder / name, destination.format)
    manifest_path = folder / "manifest.json"
    manifest = (
        json.loads(manifest_path.read_text())
        if manifest_path.exists()
        else {"destination": destination.name, "audience": audience, "deliveries": []}
    )
    manifest["purpose"] = destination.purpose
    manifest["deliveries"].append(
        {
            "delivered_at": at.isoformat(),
            "rows": delivery.rows,
            "added": delivery.added,
            "removed": delivery.removed,
            "identifiers": list(destination.identifiers),
            "files": delivery.files,
        }
    )
    _atomic_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
    return delivery


def _read(path: Path, file_format: str) -> pd.DataFrame:
    if file_format == "parquet":
        return pd.read_parquet(path)[MEMBER_COLUMNS]
    return pd.read_csv(path, dtype=str, keep_default_na=False)[MEMBER_COLUMNS]


def _write(frame: pd.DataFrame, path: Path, file_format: str) -> str:
    """Write atomically; return the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if file_format == "parquet":
        frame.to_parquet(staged, index=False)
    else:
        frame.to_csv(staged, index=False)
    digest = hashlib.sha256(staged.read_bytes()).hexdigest()
    _fsync_and_rename(staged, path)
    return digest


def _atomic_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staged.write_bytes(data)
    _fsync_and_rename(staged, path)


def _fsync_and_rename(staged: Path, path: Path) -> None:
    with staged.open("rb") as handle:
        os.fsync(handle.fileno())
    staged.replace(path)


def purge(out_dir: Path, values: set[str], at: datetime) -> int:
    """Erasure: take every row whose identifier is in `values` out of every delivered file
    (snapshots and changes), rewrite the checksums and note the erasure in each manifest
    that changed. Returns the rows removed."""
    removed_total = 0
    for manifest_path in sorted(Path(out_dir).glob("*/*/manifest.json")):
        folder = manifest_path.parent
        manifest = json.loads(manifest_path.read_text())
        removed_here = 0
        for path in sorted([*folder.glob("members.*"), *folder.glob("changes/*")]):
            if path.name.startswith("."):
                continue
            file_format = path.suffix.lstrip(".")
            frame = _read(path, file_format)
            kept = frame[~frame["identifier_value"].isin(values)]
            if len(kept) == len(frame):
                continue
            removed_here += len(frame) - len(kept)
            digest = _write(kept, path, file_format)
            name = str(path.relative_to(folder))
            for delivery in manifest["deliveries"]:
                if name in delivery["files"]:
                    delivery["files"][name] = digest
        if removed_here:
            manifest.setdefault("erasures", []).append(
                {"erased_at": at.isoformat(), "rows_removed": removed_here}
            )
            _atomic_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
            removed_total += removed_here
    return removed_total
