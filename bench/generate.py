"""How fast `dmp generate` writes about a million web + app events (target: seconds, not minutes).

Run: .venv/bin/python bench/generate.py [--persons 20000 --days 60]
Writes bench/results/generate.json.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from datagen import generate

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=20000)
    parser.add_argument("--days", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = generate(persons=args.persons, days=args.days, seed=1, out_dir=Path(out))
        seconds = time.perf_counter() - started
    events = sum(
        summary["channels"][name]["records_written"] for name in ("web_events", "app_events")
    )
    result = {
        "persons": args.persons,
        "days": args.days,
        "web_and_app_event_lines": events,
        "seconds": round(seconds, 2),
        "events_per_second": round(events / seconds),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "generate.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
