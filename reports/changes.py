"""What changed since the last run: headline figures kept beside the report and compared."""

import json
import math
import os
from pathlib import Path
from typing import Any

HEADLINE_FILE = "headline.json"

# Headline figures in the order the summary reads them: key -> (label, is money).
FIGURES = {
    "persons": ("Persons", False),
    "active_persons_7d": ("Active persons in the last 7 days", False),
    "events": ("Events", False),
    "orders": ("Completed orders", False),
    "revenue": ("Revenue (currency units)", True),
    "quarantined_lines": ("Quarantined input lines", False),
}


def _number(value: float, money: bool) -> str:
    return f"{value:,.2f}" if money else f"{value:,.0f}"


def _change(now: float, before: float, money: bool) -> str | None:
    """'+1,234, +5.2%' (the percentage only when there was something before), or None."""
    delta = now - before
    if math.isclose(delta, 0, abs_tol=0.005):
        return None
    text = f"{delta:+,.2f}" if money else f"{delta:+,.0f}"
    if before:
        text += f", {delta / abs(before) * 100:+.1f}%"
    return text


def _compared(label: str, now: float, before: float, money: bool) -> str:
    """'Persons: 1,250 (+250, +25.0%; was 1,000).' or 'Persons: 1,000 (no change).'"""
    change = _change(now, before, money)
    if change is None:
        return f"{label}: {_number(now, money)} (no change)."
    return f"{label}: {_number(now, money)} ({change}; was {_number(before, money)})."


def load_headline(folder: Path) -> dict[str, Any] | None:
    """The previous run's headline figures, or None on a first run (or an unreadable file,
    which a report never fails on: it says so and starts afresh)."""
    path = Path(folder) / HEADLINE_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def save_headline(folder: Path, headline: dict[str, Any]) -> Path:
    """Atomically (temp file, fsync, rename): a crash leaves the old figures or the new ones."""
    path = Path(folder) / HEADLINE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(headline, handle, indent=2, sort_keys=True, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path


def _campaign(best: dict[str, Any] | None) -> str:
    if not best:
        return "none"
    return f"{best['campaign']} (ROI {best['roi'] * 100:+,.0f}%)"


def describe_changes(current: dict[str, Any], previous: dict[str, Any] | None) -> list[str]:
    """Plain-English lines comparing this run's headline figures with the previous run's.

    A headline is a dict with the FIGURES keys, `period` (first and last day of the data),
    `segments` (segment name -> persons) and `best_campaign` ({campaign, roi} or None).
    """
    period = current.get("period") or ["?", "?"]
    if previous is None:
        return [
            (
                f"This is the first run of the report (data from {period[0]} to {period[1]}): "
                "there is no earlier run to compare with. The next run will list what changed."
            )
        ]
    before = previous.get("period") or ["?", "?"]
    lines = [
        (
            f"Compared with the previous run of {previous.get('written_at', 'an unknown time')} "
            f"(data from {before[0]} to {before[1]}; now {period[0]} to {period[1]}):"
        )
    ]
    changed = 0
    for key, (label, money) in FIGURES.items():
        if key not in current:
            continue
        now = current[key]
        if key not in previous:
            lines.append(f"{label}: {_number(now, money)} (not measured last time).")
            continue
        changed += _change(now, previous[key], money) is not None
        lines.append(_compared(label, now, previous[key], money))
    if not changed:
        lines[0] += " none of the headline figures changed."
    now_segments = current.get("segments", {})
    old_segments = previous.get("segments", {})
    parts = []
    for name, persons in now_segments.items():
        if name not in old_segments:
            parts.append(f"{name} {persons:,} (new)")
            continue
        change = _change(persons, old_segments[name], money=False)
        parts.append(f"{name} {persons:,} ({change or 'no change'})")
    gone = [name for name in old_segments if name not in now_segments]
    if parts:
        lines.append("Segment sizes: " + "; ".join(parts) + ".")
    if gone:
        lines.append("Segments no longer found: " + "; ".join(gone) + ".")
    best, best_before = current.get("best_campaign"), previous.get("best_campaign")
    if best or best_before:
        if best and best_before and best["campaign"] == best_before["campaign"]:
            was = (
                "no change"
                if math.isclose(best["roi"], best_before["roi"], abs_tol=5e-5)
                else f"was {best_before['roi'] * 100:+,.0f}%"
            )
            lines.append(f"Best campaign by ROI: still {_campaign(best)}; {was}.")
        else:
            lines.append(
                f"Best campaign by ROI: {_campaign(best)}, previously {_campaign(best_before)}."
            )
    return lines
