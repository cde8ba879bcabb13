"""How well the ML assets recover what the generator planted: the acceptance figures of the ML
issue, measured on generated data whose ground truth is known.

Run: .venv/bin/python bench/ml_quality.py [--persons 5000 --days 60 --seed 7] [--landing DIR]
Writes bench/results/ml_quality.json and bench/results/ml_quality.md.

Steps, in a temp folder that is removed afterwards:
1. generate the landing zone (datagen; 5,000 persons x 60 days, seed 7 by default), or read
   `--landing` (it is only read);
2. materialise every asset and asset check in-process into a fresh warehouse under the temp
   folder, as tests/conftest.py::materialise_everything does (DMP_LANDING_DIR,
   DMP_DUCKDB_PATH and DMP_REPORTS_DIR set, `dg.materialize` of all assets and checks with
   `build_resources()`); the wall time, the time of each step and every check's outcome are
   recorded (dagster's and dbt's own output goes to a log file in the temp folder);
3. map each stitched person (marts.person_identifiers) to a true person: the true person
   owning most of its planted identifiers (tie: the smaller true_person_id), with the truth
   in the graph's form as tests/conftest.py::truth_identities and tests/test_pipeline.py
   have it (e-mails as email_sha256 = SHA-256 of the trimmed, lower-cased address; social
   handles compared lower-cased); a stitched person without a planted identifier stays
   unmapped; the true person's persona comes from `_truth/personas.parquet`;
4. score:
   a. segmentation: adjusted Rand index of ml.person_segments.segment_id against the persona,
      over the mapped persons with segment_id > 0 (segment 0 = no recorded activity) and over
      all mapped persons; k; a persona x segment crosstab. Target: ARI >= 0.8;
   b. A/B read-outs: ml.ab_test_results against `_truth/ab_truth.parquet` (planted rate inside
      the reported Wilson 95% interval?) and against `_truth/manifest.json` campaigns[].variants
      (users = recipients, conversions = converted?). Target: the planted rates inside;
   c. lookalikes: per persona, a seeded sample of `--seed-size` mapped persons of that persona
      is the seed; `ml.lookalike.find_lookalikes(features, seed, top_n=--top-n)` on the
      asset's feature frame (dagster_dmp/assets/ml/lookalikes.py `lookalike_features`: profile
      features plus category interest shares, price tier, app, discount and store shares) and,
      as a baseline, on its profile columns alone; precision = the share of the top N whose
      persona is the seed's (an unmapped person counts as a miss), and seed_auc. Target: precision >= 0.8;
   d. recommendations: ml.recommendation_eval (NDCG, precision, recall, coverage at 10 per
      model; the hybrid's NDCG lift over popularity);
   e. propensity and customer value: ml.propensity_eval and ml.customer_value_eval.
"""

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from machine import describe_machine

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results"
sys.path.insert(0, str(REPO / "tests"))  # conftest: materialise_everything, truth_identities

TARGETS = {"segmentation_ari": 0.8, "lookalike_precision": 0.8}
RECOMMENDATION_K = 10
RECOMMENDATION_METRICS = ("ndcg", "precision", "recall", "coverage")
# Code whose changes would change the figures: recorded with the commit (git is only read).
CODE_PATHS = ("ml", "dagster_dmp", "dbt_project/models", "dbt_project/macros", "datagen")
LOG_TAIL_CHARS = 4000

# Every stitched person with the true person owning most of its planted identifiers.
MAPPING_SQL = """
with
graph as (
    select
        person_id,
        identifier_type,
        case when identifier_type = 'social_handle' then lower(identifier_value)
            else identifier_value end as identifier_value
    from marts.person_identifiers
),
votes as (
    select graph.person_id, truth.true_person_id, count(*) as identifiers
    from graph
    inner join truth
        on graph.identifier_type = truth.identifier_type
        and graph.identifier_value = truth.identifier_value
    group by all
),
ranked as (
    select
        *,
        sum(identifiers) over (partition by person_id) as planted_identifiers,
        row_number() over (
            partition by person_id order by identifiers desc, true_person_id
        ) as rank
    from votes
)
select
    profiles.person_id,
    ranked.true_person_id,
    personas.persona,
    coalesce(ranked.identifiers, 0) as majority_identifiers,
    coalesce(ranked.planted_identifiers, 0) as planted_identifiers
from marts.person_profiles as profiles
left join ranked on ranked.person_id = profiles.person_id and ranked.rank = 1
left join personas on personas.true_person_id = ranked.true_person_id
order by profiles.person_id
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--persons", type=int, default=5000, help="persons to generate")
    parser.add_argument("--days", type=int, default=60, help="days to generate")
    parser.add_argument("--seed", type=int, default=7, help="generator seed")
    parser.add_argument("--landing", type=Path, help="read this landing dir instead")
    parser.add_argument("--seed-size", type=int, default=200, help="lookalike seed per persona")
    parser.add_argument("--top-n", type=int, default=500, help="lookalikes scored per seed")
    parser.add_argument("--sample-seed", type=int, default=7, help="draws the lookalike seeds")
    parser.add_argument("--work-dir", type=Path, default=None, help="parent of the temp folder")
    args = parser.parse_args()

    started_all = time.perf_counter()
    load_before = os.getloadavg()
    code = _code_state()
    with tempfile.TemporaryDirectory(prefix="dmp_bench_ml_quality_", dir=args.work_dir) as tmp:
        work = Path(tmp)
        if args.landing is None:
            landing = work / "landing"
            _say(f"generating {args.persons:,} persons x {args.days} days (seed {args.seed})")
            started = time.perf_counter()
            from datagen import generate

            generate(persons=args.persons, days=args.days, seed=args.seed, out_dir=landing)
            landing_info = {"generated": True, "persons": args.persons, "days": args.days}
            landing_info["seed"] = args.seed
            landing_info["generate_seconds"] = round(time.perf_counter() - started, 1)
        else:
            landing = args.landing.resolve()
            landing_info = {"generated": False, "dir": str(landing)}

        _say("materialising every asset and check in-process (log in the temp folder)")
        run = _materialise(landing, work)
        _say(
            f"materialised in {run['wall_seconds']} s: success={run['success']}, checks "
            f"{run['checks']['passed']}/{run['checks']['evaluated']} passed"
        )
        if not run["success"]:
            print(run.pop("log_tail"), file=sys.stderr)
        run.pop("log_tail", None)

        started = time.perf_counter()
        scores = _score(
            landing,
            work / "warehouse" / "dmp.duckdb",
            seed_size=args.seed_size,
            top_n=args.top_n,
            sample_seed=args.sample_seed,
        )
        scoring_seconds = round(time.perf_counter() - started, 1)
        _say(f"scored in {scoring_seconds} s")

    report = {
        "benchmark": (
            "ML acceptance figures on generated data with known truth: segmentation ARI vs "
            "personas, A/B intervals vs planted rates, lookalike precision per persona, "
            "recommendation, propensity and customer value evaluations"
        ),
        "run_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": describe_machine(
            ("dagster", "dbt-core", "dbt-duckdb", "duckdb", "scikit-learn", "scipy", "pandas")
        ),
        "load_average_1m": {"before": round(load_before[0], 2), "after": _load_1m()},
        "script_seconds": round(time.perf_counter() - started_all, 1),
        "scoring_seconds": scoring_seconds,
        "code": code,
        "targets": TARGETS,
        "landing": landing_info,
        "materialise": run,
        **scores,
    }
    report["verdicts"] = _verdicts(report)
    report["notes"] = _notes(report)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ml_quality.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = _markdown(report)
    (RESULTS / "ml_quality.md").write_text(markdown)
    print(markdown)


def _say(message: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _load_1m() -> float:
    return round(os.getloadavg()[0], 2)


def _code_state() -> dict:
    """The commit, and the files changed on top of it that could change the figures."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            check=False,
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        return done.stdout if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD").strip() or None,
        "uncommitted_files": [
            line[3:] for line in git("status", "--porcelain", "--", *CODE_PATHS).splitlines()
        ],
    }


@contextlib.contextmanager
def _output_to(log: Path):
    """Send everything written to file descriptors 1 and 2 (dagster, dbt) into `log`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log.open("ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _materialise(landing: Path, work: Path) -> dict:
    """tests/conftest.py::materialise_everything, timed; what ran and which checks passed."""
    import dagster as dg
    from conftest import materialise_everything

    log = work / "materialise.log"
    load_before = _load_1m()
    started = time.perf_counter()
    with _output_to(log):
        result = materialise_everything(landing, work).result
    seconds = time.perf_counter() - started

    steps = {
        event.step_key: round(event.event_specific_data.duration_ms / 1000, 1)
        for event in result.get_step_success_events()
    }
    evaluations = result.get_asset_check_evaluations()
    from dagster_dmp.assets.ml import ml_assets, ml_checks

    ml_check_names = {spec.name for check in ml_checks for spec in check.check_specs}
    ml_results = [
        {
            "check": evaluation.check_name,
            "asset": evaluation.asset_key.to_user_string(),
            "passed": evaluation.passed,
            "severity": evaluation.severity.value,
            "metadata": {
                name: _plain(value.value)
                for name, value in evaluation.metadata.items()
                if isinstance(_plain(value.value), str | int | float | bool | type(None))
            },
        }
        for evaluation in evaluations
        if evaluation.check_name in ml_check_names
    ]
    failed = sorted(
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
        f"({evaluation.severity.value})"
        for evaluation in evaluations
        if not evaluation.passed
    )
    ml_steps = {
        "__".join(key.path): steps.get("__".join(key.path))
        for asset in ml_assets
        for key in asset.keys
    }
    return {
        "wall_seconds": round(seconds, 1),
        "load_average_1m": {"before": load_before, "after": _load_1m()},
        "success": result.success,
        "failed_steps": sorted(result.get_failed_step_keys()),
        "skipped_steps": sorted(
            event.step_key for event in result.all_events if event.is_step_skipped
        ),
        "assets_materialised": len(result.get_asset_materialization_events()),
        "step_seconds": dict(sorted(steps.items(), key=lambda item: -item[1])),
        "ml_step_seconds": ml_steps,
        "checks": {
            "evaluated": len(evaluations),
            "passed": sum(evaluation.passed for evaluation in evaluations),
            "failed": failed,
            "warn_severity_failed": sum(
                not e.passed and e.severity == dg.AssetCheckSeverity.WARN for e in evaluations
            ),
            "ml_checks": ml_results,
            "ml_checks_missing": sorted(
                ml_check_names - {evaluation.check_name for evaluation in evaluations}
            ),
        },
        "log_tail": log.read_text(errors="replace")[-LOG_TAIL_CHARS:],
    }


def _plain(value):
    """Metadata values as JSON-able Python scalars."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


# --- scoring ------------------------------------------------------------------------------------


def _score(landing: Path, db: Path, seed_size: int, top_n: int, sample_seed: int) -> dict:
    import duckdb
    from conftest import truth_identities

    truth = truth_identities(landing)[["identifier_type", "identifier_value", "true_person_id"]]
    personas = pd.read_parquet(landing / "_truth" / "personas.parquet")
    with duckdb.connect(str(db), read_only=True) as con:
        con.register("truth", truth)
        con.register("personas", personas)
        mapping = con.execute(MAPPING_SQL).df()
        segments = con.execute(
            "select person_id, segment_id, segment_name from ml.person_segments"
        ).df()
        ab = con.execute("select * from ml.ab_test_results order by campaign_id, variant").df()
        recommendation_eval = con.execute("select * from ml.recommendation_eval").df()
        propensity_eval = con.execute("select * from ml.propensity_eval").df()
        propensity_model = con.execute("select distinct model from ml.propensity_scores").df()
        value_eval = con.execute("select * from ml.customer_value_eval").df()
    frames = _lookalike_frames(db)
    manifest = json.loads((landing / "_truth" / "manifest.json").read_text())
    ab_truth = pd.read_parquet(landing / "_truth" / "ab_truth.parquet")

    _say("segmentation")
    mapped = mapping.dropna(subset=["persona"])
    result = {
        "mapping": _mapping_facts(mapping, personas),
        "segmentation": _segmentation(mapped, segments),
    }
    _say("A/B read-outs")
    result["ab_tests"] = _ab_tests(ab, ab_truth, manifest)
    _say("lookalikes")
    result["lookalikes"] = _lookalikes(frames, mapped, seed_size, top_n, sample_seed)
    result["recommendations"] = _recommendations(recommendation_eval)
    result["propensity"] = {
        "scoring_model": ", ".join(propensity_model["model"].astype(str)),
        "metrics": _model_metrics(propensity_eval),
    }
    result["customer_value"] = {"metrics": _model_metrics(value_eval)}
    return result


def _mapping_facts(mapping: pd.DataFrame, personas: pd.DataFrame) -> dict:
    mapped = mapping.dropna(subset=["persona"])
    per_true = mapped.groupby("true_person_id").size()
    return {
        "stitched_persons": len(mapping),
        "mapped": len(mapped),
        "unmapped": int(mapping["persona"].isna().sum()),
        "true_persons": len(personas),
        "true_persons_reached": int(per_true.size),
        "true_persons_in_more_than_one_stitched_person": int((per_true > 1).sum()),
        "identifier_share_with_the_majority": _round(
            mapped["majority_identifiers"].sum() / mapped["planted_identifiers"].sum(), 6
        ),
        "mapped_per_persona": mapped["persona"].value_counts().sort_index().to_dict(),
    }


def _segmentation(mapped: pd.DataFrame, segments: pd.DataFrame) -> dict:
    from sklearn.metrics import adjusted_rand_score

    joined = mapped.merge(segments, on="person_id", how="inner")
    active = joined[joined["segment_id"] > 0]
    crosstab = pd.crosstab(joined["persona"], joined["segment_id"])
    names = segments.drop_duplicates("segment_id").set_index("segment_id")["segment_name"]
    active_tab = crosstab.drop(columns=0, errors="ignore")
    return {
        "k": int(segments.loc[segments["segment_id"] > 0, "segment_id"].nunique()),
        "segment_names": {int(k): str(v) for k, v in names.sort_index().items()},
        "segment_sizes": {
            int(k): int(v) for k, v in segments["segment_id"].value_counts().sort_index().items()
        },
        "ari_active": _round(adjusted_rand_score(active["persona"], active["segment_id"]), 4),
        "active_persons_scored": len(active),
        "ari_all_mapped": _round(adjusted_rand_score(joined["persona"], joined["segment_id"]), 4),
        "all_mapped_persons_scored": len(joined),
        "crosstab": {
            str(persona): {str(segment): int(n) for segment, n in row.items()}
            for persona, row in crosstab.iterrows()
        },
        # Of each segment, the persona most of it has, and that share (segment > 0).
        "segment_purity": {
            str(segment): {
                "persona": str(active_tab[segment].idxmax()),
                "share": _round(active_tab[segment].max() / active_tab[segment].sum(), 4),
            }
            for segment in active_tab.columns
        },
        # Of each persona, the share of its active persons in its most common segment.
        "persona_recall": {
            str(persona): {
                "segment": int(row.idxmax()),
                "share": _round(row.max() / row.sum(), 4),
            }
            for persona, row in active_tab.iterrows()
        },
    }


def _ab_tests(ab: pd.DataFrame, ab_truth: pd.DataFrame, manifest: dict) -> dict:
    from scipy.stats import binomtest

    planted_counts = {
        (campaign["campaign_id"], variant): numbers
        for campaign in manifest["campaigns"]
        for variant, numbers in campaign.get("variants", {}).items()
    }
    truth = ab_truth.set_index(["campaign_id", "variant"])["true_conversion_rate"]
    reported = ab.set_index(["campaign_id", "variant"])
    rows = []
    for key in sorted(set(truth.index) | set(reported.index)):
        campaign, variant = key
        planted = float(truth.get(key, np.nan))
        row = {"campaign_id": campaign, "variant": variant, "planted_rate": planted}
        if key not in reported.index:
            rows.append({**row, "reported": False})
            continue
        got = reported.loc[key]
        control = got["control_variant"]
        planted_lift = planted - float(truth.get((campaign, control), np.nan))
        counts = planted_counts.get(key, {})
        row |= {
            "reported": True,
            "rate": _round(got["conversion_rate"], 6),
            "ci_low": _round(got["ci_low"], 6),
            "ci_high": _round(got["ci_high"], 6),
            "inside": bool(got["ci_low"] <= planted <= got["ci_high"]),
            # How unusual the realised count is if the planted rate is the truth.
            "binomial_p": _round(
                binomtest(int(got["conversions"]), int(got["users"]), planted).pvalue, 4
            ),
            "users": int(got["users"]),
            "conversions": int(got["conversions"]),
            "manifest_recipients": counts.get("recipients"),
            "manifest_converted": counts.get("converted"),
            "counts_match": (int(got["users"]), int(got["conversions"]))
            == (counts.get("recipients"), counts.get("converted")),
        }
        if not bool(got["is_control"]):
            row |= {
                "control": str(control),
                "planted_lift": _round(planted_lift, 6),
                "lift": _round(got["lift"], 6),
                "lift_ci_low": _round(got["lift_ci_low"], 6),
                "lift_ci_high": _round(got["lift_ci_high"], 6),
                "lift_inside": bool(got["lift_ci_low"] <= planted_lift <= got["lift_ci_high"]),
                "p_value_holm": _round(got["p_value_holm"], 4),
                "significant": bool(got["significant"]),
            }
        rows.append(row)
    reported_rows = [row for row in rows if row["reported"]]
    lifts = [row for row in reported_rows if "lift_inside" in row]
    n = len(reported_rows)
    return {
        "variants": rows,
        "variants_planted": len(truth),
        "variants_reported": n,
        "rates_inside": sum(row["inside"] for row in reported_rows),
        "counts_match": sum(row["counts_match"] for row in reported_rows),
        "lifts_inside": sum(row["lift_inside"] for row in lifts),
        "lifts": len(lifts),
        "expected_inside_if_95_percent": _round(0.95 * n, 2),
        "chance_all_inside_if_independent": _round(0.95**n, 4),
    }


def _lookalike_frames(db: Path) -> dict[str, pd.DataFrame]:
    """The asset's feature frame (profile + taste), and its profile columns alone as a baseline."""
    from dagster_dmp.assets.ml.lookalikes import lookalike_features
    from dagster_dmp.resources import WarehouseResource

    warehouse = WarehouseResource(
        duckdb_path=str(db), landing_dir=".", reports_dir=".", privacy_dir="."
    )
    features = lookalike_features(warehouse).drop(columns="rfm_segment")
    profile_only = [
        column
        for column in features.columns
        if not column.startswith("interest_share_") and not column.endswith(("_share", "_session"))
    ]
    return {"asset_features": features, "profile_only": features[profile_only]}


def _lookalikes(
    frames: dict[str, pd.DataFrame],
    mapped: pd.DataFrame,
    seed_size: int,
    top_n: int,
    sample_seed: int,
) -> dict:
    from ml.lookalike import find_lookalikes

    persona_of = mapped.set_index("person_id")["persona"]
    rng = np.random.default_rng(sample_seed)
    seeds = {}
    for persona in sorted(persona_of.unique()):
        pool = np.sort(persona_of.index[persona_of == persona].to_numpy())
        seeds[persona] = rng.choice(pool, min(seed_size, len(pool)), replace=False)
    results = {}
    for name, frame in frames.items():
        started = time.perf_counter()
        everyone = frame["person_id"]
        per_persona = {}
        for persona, seed in seeds.items():
            found = find_lookalikes(frame, seed, top_n=top_n)
            top = found.ranking["person_id"].map(persona_of)
            candidates = everyone[~everyone.isin(seed)].map(persona_of)
            strongest = found.coefficients.abs().sort_values(ascending=False).index[:4]
            per_persona[persona] = {
                "seed_size": found.seed_size,
                "ranked": len(top),
                "precision": _round((top == persona).mean(), 4),
                "hits": int((top == persona).sum()),
                "unmapped_in_top": int(top.isna().sum()),
                "base_rate": _round((candidates == persona).mean(), 4),
                "seed_auc": _round(found.seed_auc, 4),
                "top_coefficients": {
                    feature: _round(found.coefficients[feature], 3) for feature in strongest
                },
            }
        precisions = [figures["precision"] for figures in per_persona.values()]
        results[name] = {
            "features": [column for column in frame.columns if column != "person_id"],
            "personas": per_persona,
            "min_precision": min(precisions),
            "mean_precision": _round(float(np.mean(precisions)), 4),
            "personas_at_target": sum(p >= TARGETS["lookalike_precision"] for p in precisions),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return {"seed_size": seed_size, "top_n": top_n, "sample_seed": sample_seed, **results}


def _recommendations(evaluation: pd.DataFrame) -> dict:
    at_k = evaluation[
        (evaluation["k"] == RECOMMENDATION_K) & evaluation["metric"].isin(RECOMMENDATION_METRICS)
    ]
    table = at_k.pivot(index="model", columns="metric", values="value")
    summary = evaluation[evaluation["metric"].isin(("ndcg_lift_over_popularity", "test_pairs"))]
    summary = summary.set_index("metric")["value"]
    return {
        "k": RECOMMENDATION_K,
        "models": {
            str(model): {metric: _round(row[metric], 4) for metric in RECOMMENDATION_METRICS}
            for model, row in table.iterrows()
        },
        "hybrid_ndcg_lift_over_popularity": _round(
            summary.get("ndcg_lift_over_popularity", np.nan), 4
        ),
        "test_pairs": int(summary.get("test_pairs", 0)),
    }


def _model_metrics(evaluation: pd.DataFrame) -> dict:
    return {
        str(model): {str(row["metric"]): _round(row["value"], 6) for _, row in rows.iterrows()}
        for model, rows in evaluation.groupby("model", sort=False)
    }


def _round(value, digits: int) -> float | None:
    value = float(value)
    return None if np.isnan(value) else round(value, digits)


# --- report -------------------------------------------------------------------------------------


def _verdicts(report: dict) -> dict:
    segmentation, ab = report["segmentation"], report["ab_tests"]
    lookalike = report["lookalikes"]["asset_features"]
    return {
        "segmentation_ari_active_at_target": segmentation["ari_active"]
        >= TARGETS["segmentation_ari"],
        "ab_all_planted_rates_inside": ab["rates_inside"] == ab["variants_planted"],
        "ab_counts_equal_manifest": ab["counts_match"] == ab["variants_planted"],
        "lookalike_asset_features_every_persona_at_target": lookalike["personas_at_target"]
        == len(lookalike["personas"]),
        "recommendation_hybrid_beats_popularity": (
            report["recommendations"]["hybrid_ndcg_lift_over_popularity"] or 0
        )
        > 1,
        "every_check_passed": not report["materialise"]["checks"]["failed"],
    }


def _notes(report: dict) -> list[str]:
    lookalikes = report["lookalikes"]
    asset, baseline = lookalikes["asset_features"], lookalikes["profile_only"]
    ab = report["ab_tests"]
    notes = [
        (
            "Mapping: a stitched person is the true person owning most of its planted "
            "identifiers (the truth in the graph's form: email_sha256, handles lower-cased); "
            "stitched persons without a planted identifier are unmapped and left out of the "
            "ARI, and count as misses in a lookalike top N. Several stitched persons of one "
            "true person (identifiers the data never links) each count as a person."
        ),
        (
            "Segmentation ARI: sklearn adjusted_rand_score of segment_id against persona; "
            "'active' leaves out segment 0 (no recorded activity), 'all mapped' keeps it as a "
            "segment of its own."
        ),
        (
            f"A/B: each Wilson 95% interval covers its planted rate with about 95% chance by "
            f"construction, so of {ab['variants_reported']} intervals about "
            f"{ab['expected_inside_if_95_percent']} are expected inside, and all of them with "
            f"a chance of about {ab['chance_all_inside_if_independent']:.0%} (independent "
            "samples); a miss or two is no defect. Planted lift = planted variant rate - planted "
            "control rate, against the reported 95% lift interval."
        ),
        (
            f"Lookalikes: per persona, {lookalikes['seed_size']} mapped persons of it drawn "
            f"with numpy default_rng({lookalikes['sample_seed']}) (personas in name order; the "
            f"same seeds for every feature frame), top {lookalikes['top_n']} of everyone else "
            "in marts.person_profiles; precision = share of that persona in the top N; "
            "base_rate = its share among the ranked candidates (what a random list scores)."
        ),
    ]
    outside = [row for row in ab["variants"] if row["reported"] and not row["inside"]]
    if outside:
        notes.append(
            "Planted rate outside its interval: "
            + ", ".join(
                f"{row['campaign_id']} {row['variant']} (planted {row['planted_rate']:.2%}, "
                f"{row['conversions']} of {row['users']} = {row['rate']:.2%}; binomial p "
                f"{row['binomial_p']:.3f})"
                for row in outside
            )
            + ". The read-out counts exactly the recipients and conversions the generator "
            "drew (the manifest's), so the gap is in the draw, not in the analysis: the "
            "generator gives each recipient a Bernoulli(planted rate) conversion "
            "(datagen/visits.py)."
        )
    notes.append(
        f"Lookalike precision with the asset's features (profile + taste): "
        f"{asset['min_precision']:.1%}-{max(p['precision'] for p in asset['personas'].values()):.1%}"
        f"; with the profile columns alone: {baseline['min_precision']:.1%}-"
        f"{max(p['precision'] for p in baseline['personas'].values()):.1%}. Planted personas "
        "differ mostly in category mix and price tier (datagen/personas.py), which profile "
        "columns do not hold."
    )
    notes.append(
        "Times: materialise = the in-process dg.materialize of every asset and check (dlt "
        "ingestion, dbt build with its tests, ML assets, reports) on the 2-core machine, "
        "shared with other work; see load_average_1m."
    )
    return notes


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _markdown(report: dict) -> str:
    machine, landing, run = report["machine"], report["landing"], report["materialise"]
    mapping, segmentation = report["mapping"], report["segmentation"]
    ab, lookalikes = report["ab_tests"], report["lookalikes"]
    checks = run["checks"]
    scale = (
        f"{landing['persons']:,} persons x {landing['days']} days (seed {landing['seed']})"
        if landing["generated"]
        else f"landing {landing['dir']}"
    )
    ari_ok = segmentation["ari_active"] >= TARGETS["segmentation_ari"]
    lines = [
        "# ML quality: the ML assets against the generator's planted truth",
        "",
        (
            f"{scale}. {machine['cores']} cores, {machine['ram_gb']} GB, {machine['cpu']}; "
            f"Python {machine['python']}, dagster {machine['dagster']}, dbt-core "
            f"{machine['dbt-core']}, duckdb {machine['duckdb']}, scikit-learn "
            f"{machine['scikit-learn']}. Run {report['run_at']}: `{report['command']}` "
            f"({report['script_seconds']} s in all; commit {report['code']['commit']}, "
            f"{len(report['code']['uncommitted_files'])} uncommitted code files); load average "
            f"{report['load_average_1m']['before']} before, "
            f"{report['load_average_1m']['after']} after."
        ),
        "",
        (
            f"Materialising every asset and check in-process took {run['wall_seconds']} s "
            f"(generate {landing.get('generate_seconds', '-')} s, scoring "
            f"{report['scoring_seconds']} s): success {run['success']}, "
            f"{run['assets_materialised']} materialisations, {checks['passed']} of "
            f"{checks['evaluated']} checks passed"
            + (f"; failed: {', '.join(checks['failed'])}" if checks["failed"] else "")
            + ". ML steps: "
            + ", ".join(f"{step} {s} s" for step, s in run["ml_step_seconds"].items())
            + "."
        ),
        "",
        "| ML check | asset | passed | severity | metadata |",
        "|---|---|---|---|---|",
    ]
    for check in checks["ml_checks"]:
        metadata = ", ".join(
            f"{k} {_num(v) if isinstance(v, float) else v}" for k, v in check["metadata"].items()
        )
        lines.append(
            f"| {check['check']} | {check['asset']} | {check['passed']} | {check['severity']} "
            f"| {metadata} |"
        )
    lines += [
        "",
        "## Summary",
        "",
        "| measure | value | target |",
        "|---|---:|---|",
        (
            f"| segmentation ARI, active mapped persons (segment > 0) | "
            f"{segmentation['ari_active']:.4f} | >= {TARGETS['segmentation_ari']} "
            f"({'met' if ari_ok else 'NOT met'}) |"
        ),
        f"| segmentation ARI, all mapped persons | {segmentation['ari_all_mapped']:.4f} | |",
        (
            f"| segments k (planted personas) | {segmentation['k']} "
            f"({len(mapping['mapped_per_persona'])}) | |"
        ),
        (
            f"| A/B planted rates inside the 95% interval | {ab['rates_inside']} of "
            f"{ab['variants_planted']} | all (expected {ab['expected_inside_if_95_percent']}) |"
        ),
        (
            f"| A/B planted lifts inside the 95% lift interval | {ab['lifts_inside']} of "
            f"{ab['lifts']} | |"
        ),
        (
            f"| A/B users and conversions equal the manifest | {ab['counts_match']} of "
            f"{ab['variants_planted']} | all |"
        ),
    ]
    for name, figures in lookalikes.items():
        if not isinstance(figures, dict):
            continue
        lines.append(
            f"| lookalike precision@{lookalikes['top_n']}, {name}: lowest / mean "
            f"(personas at target) | {_pct(figures['min_precision'])} / "
            f"{_pct(figures['mean_precision'])} ({figures['personas_at_target']} of "
            f"{len(figures['personas'])}) | >= {TARGETS['lookalike_precision']:.0%} |"
        )
    recommendations = report["recommendations"]
    hybrid = recommendations["models"].get("hybrid", {})
    best_auc = report["propensity"]["metrics"].get("best", {}).get("auc")
    best_r2 = report["customer_value"]["metrics"].get("best", {}).get("r2")
    lines += [
        (
            f"| recommendations: hybrid NDCG@10 / lift over popularity | "
            f"{_num(hybrid.get('ndcg'))} / "
            f"{_num(recommendations['hybrid_ndcg_lift_over_popularity'], 3)} | lift > 1 |"
        ),
        f"| propensity: best AUC | {_num(best_auc)} | >= 0.6 (asset floor) |",
        f"| customer value: best R2 | {_num(best_r2)} | >= -0.1 (asset floor) |",
        "",
        "## Mapping stitched persons to true persons",
        "",
        (
            f"{mapping['stitched_persons']:,} stitched persons (marts.person_profiles): "
            f"{mapping['mapped']:,} mapped, {mapping['unmapped']:,} unmapped; they reach "
            f"{mapping['true_persons_reached']:,} of {mapping['true_persons']:,} true persons "
            f"({mapping['true_persons_in_more_than_one_stitched_person']:,} in more than one "
            f"stitched person); {_pct(mapping['identifier_share_with_the_majority'])} of the "
            "planted identifiers of mapped persons belong to their majority true person. "
            "Mapped per persona: "
            + ", ".join(f"{p} {n:,}" for p, n in mapping["mapped_per_persona"].items())
            + "."
        ),
        "",
        "## 1. Segmentation",
        "",
        (
            f"k = {segmentation['k']}. ARI {segmentation['ari_active']:.4f} over "
            f"{segmentation['active_persons_scored']:,} active mapped persons, "
            f"{segmentation['ari_all_mapped']:.4f} over all "
            f"{segmentation['all_mapped_persons_scored']:,} mapped persons. Persona x segment "
            "(mapped persons):"
        ),
        "",
    ]
    segment_ids = list(segmentation["segment_names"])
    lines.append(
        "| persona | "
        + " | ".join(f"{s}: {segmentation['segment_names'][s]}" for s in segment_ids)
        + " | persons in main segment |"
    )
    lines.append("|---|" + "---:|" * (len(segment_ids) + 1))
    for persona, row in segmentation["crosstab"].items():
        recall = segmentation["persona_recall"].get(persona, {})
        lines.append(
            f"| {persona} | "
            + " | ".join(f"{row.get(str(s), 0):,}" for s in segment_ids)
            + f" | {_pct(recall.get('share'))} (segment {recall.get('segment', '-')}) |"
        )
    purity = segmentation["segment_purity"]
    lines.append(
        "| main persona's share | "
        + " | ".join(
            f"{_pct(purity[str(s)]['share'])}" if str(s) in purity else "-" for s in segment_ids
        )
        + " | |"
    )
    lines += [
        "",
        "## 2. A/B read-outs",
        "",
        (
            "| campaign | variant | planted rate | reported rate | 95% interval | inside | "
            "users / manifest recipients | conversions / manifest converted | planted lift | "
            "lift [95% interval] | lift inside | Holm p | binomial p of the count at the "
            "planted rate |"
        ),
        "|---|---|---:|---:|---|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for row in ab["variants"]:
        if not row["reported"]:
            lines.append(
                f"| {row['campaign_id']} | {row['variant']} | {row['planted_rate']:.4f} | "
                "not reported | | | | | | | | | |"
            )
            continue
        lift = (
            f"{row['planted_lift']:+.4f} | {row['lift']:+.4f} [{row['lift_ci_low']:+.4f}, "
            f"{row['lift_ci_high']:+.4f}] | {'yes' if row['lift_inside'] else 'NO'} | "
            f"{row['p_value_holm']:.3f}"
            if "lift" in row
            else "control | | |"
        )
        binomial = _num(row["binomial_p"])
        lines.append(
            f"| {row['campaign_id']} | {row['variant']} | {row['planted_rate']:.4f} | "
            f"{row['rate']:.4f} | [{row['ci_low']:.4f}, {row['ci_high']:.4f}] | "
            f"{'yes' if row['inside'] else 'NO'} | {row['users']:,} / "
            f"{row['manifest_recipients']:,} | {row['conversions']:,} / "
            f"{row['manifest_converted']:,} | {lift} | {binomial} |"
        )
    lines += [
        "",
        (
            f"## 3. Lookalikes (seed {lookalikes['seed_size']} persons of one persona, "
            f"precision of the top {lookalikes['top_n']})"
        ),
        "",
    ]
    names = [name for name, figures in lookalikes.items() if isinstance(figures, dict)]
    lines.append(
        "| persona | base rate | "
        + " | ".join(f"{name}: precision (seed_auc)" for name in names)
        + " |"
    )
    lines.append("|---|---:|" + "---:|" * len(names))
    for persona, first in lookalikes[names[0]]["personas"].items():
        cells = [
            f"{_pct(lookalikes[n]['personas'][persona]['precision'])} "
            f"({_num(lookalikes[n]['personas'][persona]['seed_auc'], 3)})"
            for n in names
        ]
        lines.append(f"| {persona} | {_pct(first['base_rate'])} | " + " | ".join(cells) + " |")
    lines += [""]
    for name in names:
        figures = lookalikes[name]
        lines.append(
            f"- {name} ({len(figures['features'])} features, {figures['seconds']} s): "
            + ", ".join(figures["features"])
            + "."
        )
    lines += [
        "",
        "## 4. Recommendations (temporal holdout, k = 10)",
        "",
        "| model | " + " | ".join(f"{m}@10" for m in RECOMMENDATION_METRICS) + " |",
        "|---|" + "---:|" * len(RECOMMENDATION_METRICS),
    ]
    for model, figures in recommendations["models"].items():
        lines.append(
            f"| {model} | " + " | ".join(_num(figures[m]) for m in RECOMMENDATION_METRICS) + " |"
        )
    lines += [
        "",
        (
            f"Hybrid NDCG@10 lift over popularity: "
            f"{_num(recommendations['hybrid_ndcg_lift_over_popularity'], 3)} "
            f"({recommendations['test_pairs']:,} held-out person-product pairs)."
        ),
        "",
        f"## 5a. Propensity (scoring model: {report['propensity']['scoring_model']})",
        "",
        *_metrics_table(report["propensity"]["metrics"]),
        "",
        "## 5b. Customer value",
        "",
        *_metrics_table(report["customer_value"]["metrics"]),
        "",
        "## Notes",
        "",
        *[f"- {note}" for note in report["notes"]],
        "",
    ]
    return "\n".join(lines)


def _metrics_table(metrics: dict) -> list[str]:
    names = list(dict.fromkeys(metric for figures in metrics.values() for metric in figures))
    lines = ["| model | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for model, figures in metrics.items():
        cells = ["" if figures.get(name) is None else f"{figures[name]:.4g}" for name in names]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
