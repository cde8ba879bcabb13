"""Does segmentation recover the planted personas at every data size? Adjusted Rand index of
ml.person_segments against the generator's personas, from short to long histories and from
small to large populations, several generator seeds each.

Run: .venv/bin/python bench/segmentation.py [--scenario 4000x30 ...] [--seeds 1 2 3]
Writes bench/results/segmentation.json and bench/results/segmentation.md. Each run replaces
the earlier figures of its scenario and seed and keeps the others, so the heavy scenarios can
be measured one at a time.

Per scenario and seed, in a temp folder that is removed afterwards:
1. generate the landing zone (datagen);
2. materialise ml/person_segments, marts.person_profiles and marts.person_identifiers (the
   mapping reads them) and everything upstream of them, in-process, as
   tests/conftest.py::materialise_everything does (the real pipeline path: dlt, dbt, the
   segmentation asset; the assets downstream of it are not needed for these figures);
3. map stitched persons to planted personas and score as bench/ml_quality.py does
   (MAPPING_SQL; ARI over mapped persons with segment_id > 0), and read the bootstrap
   stability the asset recorded in ml.segmentation_eval.
"""

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import describe_machine
from ml_quality import (
    MAPPING_SQL,
    RESULTS,
    TARGETS,
    _code_state,
    _load_1m,
    _output_to,
    _say,
    _segmentation,
)

SCENARIOS = ("2000x30", "4000x30", "5000x60", "20000x90")
SEEDS = (1, 2, 3)
NAME = "segmentation"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", nargs="+", default=SCENARIOS, help="PERSONSxDAYS")
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS, help="generator seeds")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folders")
    args = parser.parse_args()

    previous = RESULTS / f"{NAME}.json"
    runs = json.loads(previous.read_text())["runs"] if previous.exists() else []
    for scenario in args.scenario:
        persons, days = (int(part) for part in scenario.split("x"))
        for seed in args.seeds:
            run = measure(persons, days, seed, args.work_dir)
            runs = [
                r for r in runs if (r["persons"], r["days"], r["seed"]) != (persons, days, seed)
            ]
            runs.append(run)
            write(runs)


def measure(persons: int, days: int, seed: int, work_dir: Path | None) -> dict:
    from datagen import generate

    with tempfile.TemporaryDirectory(prefix="dmp_bench_segmentation_", dir=work_dir) as tmp:
        work = Path(tmp)
        _say(f"generating {persons:,} persons x {days} days (seed {seed})")
        started = time.perf_counter()
        generate(persons=persons, days=days, seed=seed, out_dir=work / "landing")
        generate_seconds = time.perf_counter() - started

        _say("materialising ml/person_segments and its upstream assets")
        load_before = _load_1m()
        started = time.perf_counter()
        result = materialise_segments(work / "landing", work)
        materialise_seconds = time.perf_counter() - started
        if not result.success:
            print((work / "materialise.log").read_text()[-4000:], file=sys.stderr)
            raise SystemExit(f"materialisation failed: {sorted(result.get_failed_step_keys())}")
        step_seconds = {
            event.step_key: event.event_specific_data.duration_ms / 1000
            for event in result.get_step_success_events()
        }
        scores = score(work / "landing", work / "warehouse" / "dmp.duckdb")
    _say(f"ARI {scores['ari_active']:.4f}, k {scores['k']}, stability {scores['stability']}")
    return {
        "persons": persons,
        "days": days,
        "seed": seed,
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code": _code_state(),
        "generate_seconds": round(generate_seconds, 1),
        "materialise_seconds": round(materialise_seconds, 1),
        "segmentation_step_seconds": round(step_seconds.get("ml__person_segments", 0.0), 1),
        "load_average_1m": {"before": load_before, "after": _load_1m()},
        **scores,
    }


def materialise_segments(landing: Path, work: Path):
    """ml/person_segments, the marts the scoring maps persons with, and everything upstream of
    them; dagster's and dbt's output to a log."""
    import dagster as dg

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from conftest import materialise_everything

    from dagster_dmp.assets.ml.inputs import PERSON_PROFILES, PERSON_SEGMENTS

    scored = (PERSON_SEGMENTS, PERSON_PROFILES, dg.AssetKey(["marts", "person_identifiers"]))
    with _output_to(work / "materialise.log"):
        return materialise_everything(
            landing, work, selection=dg.AssetSelection.assets(*scored).upstream()
        ).result


def score(landing: Path, db: Path) -> dict:
    import duckdb
    from conftest import truth_identities

    truth = truth_identities(landing)[["identifier_type", "identifier_value", "true_person_id"]]
    personas = pd.read_parquet(landing / "_truth" / "personas.parquet")
    with duckdb.connect(str(db), read_only=True) as con:
        con.register("truth", truth)
        con.register("personas", personas)
        mapped = con.execute(MAPPING_SQL).df().dropna(subset=["persona"])
        segments = con.execute(
            "select person_id, segment_id, segment_name from ml.person_segments"
        ).df()
        evaluation = con.execute("select * from ml.segmentation_eval").df()
    scores = _segmentation(mapped, segments)
    stability = evaluation.set_index("metric")["value"]
    return {
        "k": scores["k"],
        "ari_active": scores["ari_active"],
        "ari_all_mapped": scores["ari_all_mapped"],
        "active_persons_scored": scores["active_persons_scored"],
        "stability": round(float(stability.get("bootstrap_stability_ari", float("nan"))), 4),
        "method": str(evaluation["model"].iloc[0]) if len(evaluation) else None,
        "segment_names": scores["segment_names"],
        "segment_sizes": scores["segment_sizes"],
        "persona_recall": scores["persona_recall"],
    }


def write(runs: list[dict]) -> None:
    runs = sorted(runs, key=lambda r: (r["persons"] * r["days"], r["persons"], r["seed"]))
    report = {
        "benchmark": (
            "Segmentation ARI against planted personas across data sizes (persons x days), "
            "through the real pipeline path up to ml/person_segments"
        ),
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(("dagster", "duckdb", "scikit-learn", "scipy", "numpy")),
        "target_ari": TARGETS["segmentation_ari"],
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    target = report["target_ari"]
    lines = [
        "# Segmentation across data sizes",
        "",
        f"Written {report['written_at']} by `bench/segmentation.py` on "
        f"{report['machine']['cores']} cores ({report['machine']['cpu']}).",
        "",
        f"ARI: sklearn adjusted_rand_score of segment_id against the planted persona over mapped "
        f"persons with segment_id > 0 (target >= {target}). Stability: mean ARI between the "
        "segmentation and refits on bootstrap resamples of the persons, compared on the persons "
        "each resample holds (ml.segmentation_eval).",
        "",
        "| persons x days | seed | k | ARI (active) | ARI (all mapped) | stability | "
        "materialise s | segmentation s | at target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        lines.append(
            f"| {run['persons']:,} x {run['days']} | {run['seed']} | {run['k']} | "
            f"{run['ari_active']:.4f} | {run['ari_all_mapped']:.4f} | {run['stability']:.3f} | "
            f"{run['materialise_seconds']:.0f} | {run['segmentation_step_seconds']:.0f} | "
            f"{'yes' if run['ari_active'] >= target else 'NO'} |"
        )
    lines += ["", "Segment names per run:", ""]
    for run in report["runs"]:
        names = "; ".join(f"{s}: {n}" for s, n in run["segment_names"].items())
        lines.append(f"- {run['persons']:,} x {run['days']}, seed {run['seed']}: {names}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
