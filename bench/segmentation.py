"""Does segmentation recover the planted personas at every data size? Adjusted Rand index of
ml.person_segments against the generator's personas, from short to long histories and from
small to large populations, several generator seeds each.

Run: .venv/bin/python bench/segmentation.py [--scenario 4000x30 ...] [--seeds 1 2 3]
         [--real online-retail taobao]
Writes bench/results/segmentation.json and bench/results/segmentation.md. Each run replaces
the earlier figures of its scenario and seed (or real dataset) and keeps the others, so the
heavy scenarios can be measured one at a time.

`--real NAME`: a real dataset, whole, through the product's own path (`dmp import`'s
importer into a landing zone, then the same materialisation): the segments, their sizes and
names and the bootstrap stability (no planted truth to score against). The files come from
DMP_REAL_DATA_DIR (default ../shared/data/real, as tests/test_real_pipelines.py).

Per scenario and seed, in a temp folder that is removed afterwards:
1. generate the landing zone (datagen);
2. materialise ml/person_segments, marts.person_profiles and marts.person_identifiers (the
   mapping reads them) and everything upstream of them, in-process, as
   tests/conftest.py::materialise_everything does (the real pipeline path: dlt, dbt, the
   segmentation asset; the assets downstream of it are not needed for these figures);
3. map stitched persons to planted personas and score as bench/ml_quality.py does
   (MAPPING_SQL; ARI over mapped persons with segment_id > 0), and read the bootstrap
   stability the asset recorded in ml.segmentation_eval;
4. a ceiling for that ARI: a classifier that is *told* the personas (gradient boosting,
   5-fold cross-validated predictions) on the same per-person counts the segmentation reads
   (marts.person_behaviour and the category counts of marts.person_interests), over the
   same persons. An unsupervised segmentation of those counts cannot expect to beat it: when
   both sit below the target, the data holds too little evidence per person, not the model.
"""

import argparse
import datetime as dt
import json
import os
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
REAL_DATA = Path(
    os.environ.get(
        "DMP_REAL_DATA_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
    )
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", nargs="+", default=SCENARIOS, help="PERSONSxDAYS")
    parser.add_argument("--seeds", nargs="+", type=int, default=SEEDS, help="generator seeds")
    parser.add_argument("--real", nargs="*", default=[], help="real datasets, e.g. taobao")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folders")
    args = parser.parse_args()

    previous = RESULTS / f"{NAME}.json"
    earlier = json.loads(previous.read_text()) if previous.exists() else {}
    runs, real = earlier.get("runs", []), earlier.get("real", {})
    for name in args.real:
        real[name] = measure_real(name, args.work_dir)
        write(runs, real)
    for scenario in args.scenario:
        persons, days = (int(part) for part in scenario.split("x"))
        for seed in args.seeds:
            run = measure(persons, days, seed, args.work_dir)
            runs = [
                r for r in runs if (r["persons"], r["days"], r["seed"]) != (persons, days, seed)
            ]
            runs.append(run)
            write(runs, real)


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


def measure_real(name: str, work_dir: Path | None) -> dict:
    from ingestion.importers import IMPORTERS, import_dataset

    importer = IMPORTERS[name]
    source = REAL_DATA / importer.folder / importer.default_file
    with tempfile.TemporaryDirectory(prefix="dmp_bench_segmentation_", dir=work_dir) as tmp:
        work = Path(tmp)
        _say(f"importing {source} ({name})")
        import_dataset(name, source, work / "landing")
        _say("materialising ml/person_segments and its upstream assets")
        started = time.perf_counter()
        result = materialise_segments(work / "landing", work)
        materialise_seconds = time.perf_counter() - started
        if not result.success:
            raise SystemExit(f"materialisation failed: {sorted(result.get_failed_step_keys())}")
        import duckdb

        with duckdb.connect(str(work / "warehouse" / "dmp.duckdb"), read_only=True) as con:
            summary = con.execute(
                "select segment_id, segment_name, persons, person_share, revenue_per_person, "
                "orders_per_person, sessions_per_person from ml.segment_summary "
                "order by segment_id = 0, segment_id"
            ).df()
            evaluation = con.execute("select * from ml.segmentation_eval").df()
    figures = evaluation.set_index("metric")["value"]
    segmented = summary[summary["segment_id"] > 0]
    _say(f"{name}: {len(segmented)} segments, stability {figures['bootstrap_stability_ari']:.3f}")
    return {
        "source": str(source),
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code": _code_state(),
        "materialise_seconds": round(materialise_seconds, 1),
        "method": str(evaluation["model"].iloc[0]),
        "k": int(figures["k"]),
        "smallest_segment_share": round(float(segmented["person_share"].min()), 4),
        "stability": round(float(figures["bootstrap_stability_ari"]), 4),
        "stability_min": round(float(figures["bootstrap_stability_ari_min"]), 4),
        "segments": summary.round(4)
        .astype(object)
        .where(summary.notna(), None)
        .to_dict(orient="records"),
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
            "select person_id, segment_id, segment_name, probability from ml.person_segments"
        ).df()
        evaluation = con.execute("select * from ml.segmentation_eval").df()
        behaviour = con.execute("select * from marts.person_behaviour").df()
        interests = con.execute(
            "select person_id, category, weighted_activities from marts.person_interests"
        ).df()
    scores = _segmentation(mapped, segments.drop(columns="probability"))
    # Segment 0 holds persons without activity (probability 1) and those whose likeliest
    # segment was not likely enough: the share segmented is of the persons with activity.
    with_activity = mapped.merge(segments, on="person_id")
    with_activity = with_activity[
        (with_activity["segment_id"] > 0) | (with_activity["probability"] < 1)
    ]
    active = mapped.merge(segments[segments["segment_id"] > 0], on="person_id")
    stability = evaluation.set_index("metric")["value"]
    return {
        "k": scores["k"],
        "ari_active": scores["ari_active"],
        "ari_all_mapped": scores["ari_all_mapped"],
        "active_persons_scored": scores["active_persons_scored"],
        "segmented_share": round(scores["active_persons_scored"] / len(with_activity), 4),
        "supervised_ari_ceiling": supervised_ceiling(behaviour, interests, active),
        "stability": round(float(stability.get("bootstrap_stability_ari", float("nan"))), 4),
        "method": str(evaluation["model"].iloc[0]) if len(evaluation) else None,
        "segment_names": scores["segment_names"],
        "segment_sizes": scores["segment_sizes"],
        "persona_recall": scores["persona_recall"],
    }


def supervised_ceiling(
    behaviour: pd.DataFrame, interests: pd.DataFrame, scored: pd.DataFrame
) -> float:
    """ARI of cross-validated predictions of a classifier trained on the true personas, from
    the counts the segmentation reads, over the persons the segmentation ARI is scored on."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import adjusted_rand_score
    from sklearn.model_selection import cross_val_predict

    categories = interests.pivot_table(
        index="person_id", columns="category", values="weighted_activities", aggfunc="sum"
    )
    features = (
        behaviour.set_index("person_id")
        .join(categories.add_prefix("category:"))
        .fillna(0)
        .loc[scored["person_id"]]
    )
    predicted = cross_val_predict(
        HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=0),
        features.to_numpy(dtype=float),
        scored["persona"].to_numpy(),
        cv=5,
    )
    return round(float(adjusted_rand_score(scored["persona"], predicted)), 4)


def write(runs: list[dict], real: dict[str, dict]) -> None:
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
        "real": real,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / f"{NAME}.md").write_text(markdown(report))


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def markdown(report: dict) -> str:
    target = report["target_ari"]
    lines = [
        "# Segmentation across data sizes",
        "",
        (
            f"Written {report['written_at']} by `bench/segmentation.py` on "
            f"{report['machine']['cores']} cores ({report['machine']['cpu']})."
        ),
        "",
        (
            "ARI: sklearn adjusted_rand_score of segment_id against the planted persona over "
            f"mapped persons with segment_id > 0 (target >= {target}). Segmented: the share of "
            "mapped persons with activity given a segment (the rest, whose likeliest segment "
            "has a probability under ml.segmentation.MIN_SEGMENT_PROBABILITY, are in segment 0 "
            "with the inactive; ARI (all mapped) counts segment 0 as one more group). Ceiling: the ARI of a "
            "classifier told the personas (gradient boosting, 5-fold cross-validated) on the "
            "same per-person counts, over the same persons. Stability: mean ARI between the "
            "segmentation and refits on bootstrap resamples of the persons, compared on the "
            "persons each resample holds (ml.segmentation_eval)."
        ),
        "",
        (
            "| persons x days | seed | k | ARI (segmented) | segmented | ceiling | "
            "ARI (all mapped) | stability | materialise s | segmentation s | at target |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in report["runs"]:
        lines.append(
            f"| {run['persons']:,} x {run['days']} | {run['seed']} | {run['k']} | "
            f"{run['ari_active']:.4f} | {_share(run.get('segmented_share'))} | "
            f"{run['supervised_ari_ceiling']:.4f} | "
            f"{run['ari_all_mapped']:.4f} | {run['stability']:.3f} | "
            f"{run['materialise_seconds']:.0f} | {run['segmentation_step_seconds']:.0f} | "
            f"{'yes' if run['ari_active'] >= target else 'NO'} |"
        )
    if report["real"]:
        lines += [
            "",
            "## Real datasets, whole, through the product's import and pipeline",
            "",
            "| dataset | method | k | smallest segment | stability (mean / min) | materialise s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for name, run in report["real"].items():
            lines.append(
                f"| {name} | {run['method']} | {run['k']} | {run['smallest_segment_share']:.1%} "
                f"| {run['stability']:.3f} / {run['stability_min']:.3f} | "
                f"{run['materialise_seconds']:.0f} |"
            )
        for name, run in report["real"].items():
            lines += ["", f"{name}:", ""]
            lines.append(
                "| segment | name | persons | share | revenue / person | orders / person |"
            )
            lines.append("|---:|---|---:|---:|---:|---:|")
            for row in run["segments"]:
                lines.append(
                    f"| {row['segment_id']} | {row['segment_name']} | {row['persons']:,} | "
                    f"{row['person_share']:.1%} | {row['revenue_per_person'] or 0:,.2f} | "
                    f"{row['orders_per_person'] or 0:.2f} |"
                )
    lines += ["", "Segment names per run:", ""]
    for run in report["runs"]:
        names = "; ".join(f"{s}: {n}" for s, n in run["segment_names"].items())
        lines.append(f"- {run['persons']:,} x {run['days']}, seed {run['seed']}: {names}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
