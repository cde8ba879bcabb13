"""`dmp`: generate or import channel data, materialise the asset graph in-process, run demos."""

import argparse
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from dagster_dmp import settings

DEFAULT_PERSONS = 5000
DEFAULT_DAYS = 60
DEFAULT_SEED = 7


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"dmp {args.command}: error: {error}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    from ingestion.importers import IMPORTERS

    datasets = sorted(IMPORTERS)
    parser = argparse.ArgumentParser(
        prog="dmp",
        description="Open warehouse-native Data Management Platform "
        "(dlt -> DuckDB -> dbt -> ML -> reports).",
        epilog="Paths: DMP_DUCKDB_PATH (warehouse), DMP_LANDING_DIR (input files), "
        "DMP_REPORTS_DIR (report), DMP_REAL_DATA_DIR (real datasets for --dataset).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate", help="write synthetic channel data with ground truth into a landing folder"
    )
    _add_generate_options(generate)
    _add_out_option(generate)
    generate.set_defaults(handler=_generate)

    import_ = commands.add_parser(
        "import", help="turn a real public dataset into landing-zone files"
    )
    import_.add_argument("dataset", choices=datasets, help="which dataset")
    import_.add_argument("path", type=Path, help="the dataset's folder (or its data file)")
    _add_out_option(import_)
    import_.set_defaults(handler=_import)

    run = commands.add_parser("run", help="materialise assets in-process (default: all)")
    run.add_argument(
        "--select",
        default="*",
        help="Dagster asset selection, e.g. 'key:ml/person_segments+' (default: every asset)",
    )
    run.set_defaults(handler=_run)

    demo = commands.add_parser(
        "demo",
        help="from an empty warehouse: generate (or import) data, materialise every asset, "
        "print the report path",
    )
    _add_generate_options(demo)
    demo.add_argument(
        "--dataset",
        choices=datasets,
        help="run on a real dataset instead of synthetic data (read from DMP_REAL_DATA_DIR, "
        "default ../shared/data/real beside the repository)",
    )
    demo.set_defaults(handler=_demo)

    collect = commands.add_parser(
        "collect",
        help="serve the HTTP event collector: web and app clients POST events, acknowledged "
        "events land in the landing zone (write keys from DMP_WRITE_KEYS='web:KEY,app:KEY')",
    )
    collect.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    collect.add_argument("--port", type=int, default=8181, help="port (default: %(default)s)")
    collect.set_defaults(handler=_collect)

    forget = commands.add_parser(
        "forget",
        help="erase a person: suppress their identifiers at ingestion, remove them from the "
        "raw data, identity graph, marts, ML outputs, audiences, exports and report, and audit "
        "the request (salt from DMP_PRIVACY_SALT)",
    )
    who = forget.add_mutually_exclusive_group(required=True)
    who.add_argument("--email", help="the person's e-mail address")
    who.add_argument("--person-id", help="the person's id (marts.person_profiles.person_id)")
    forget.set_defaults(handler=_forget)
    return parser


def _add_generate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--persons",
        type=int,
        default=DEFAULT_PERSONS,
        help=f"persons to simulate (default {DEFAULT_PERSONS})",
    )
    parser.add_argument(
        "--days", type=int, default=DEFAULT_DAYS, help=f"days of history (default {DEFAULT_DAYS})"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )


def _add_out_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="landing folder to write (default: $DMP_LANDING_DIR or data/landing)",
    )


def _progress(message: str) -> None:
    print(f"[dmp] {message}", file=sys.stderr, flush=True)


def _generate(args: argparse.Namespace) -> int:
    from datagen import generate

    out = (args.out or settings.landing_dir()).resolve()
    started = time.perf_counter()
    _progress(
        f"generating {args.persons:,} persons x {args.days} days (seed {args.seed}) into {out}"
    )
    generate(persons=args.persons, days=args.days, seed=args.seed, out_dir=out, progress=_progress)
    _progress(f"done in {time.perf_counter() - started:.1f}s; ground truth in {out / '_truth'}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from ingestion.importers import import_dataset

    out = (args.out or settings.landing_dir()).resolve()
    started = time.perf_counter()
    _progress(f"importing {args.dataset} from {args.path} into {out}")
    summary = import_dataset(args.dataset, args.path, out)
    for channel, rows in summary["rows_written"].items():
        _progress(f"  {channel}: {rows:,} rows")
    for reason, rows in summary.get("set_aside", {}).items():
        _progress(f"  set aside, {reason}: {rows:,} rows")
    _progress(f"done in {time.perf_counter() - started:.1f}s")
    return 0


def _collect(args: argparse.Namespace) -> int:
    from ingestion.collector import run_collector, write_keys_from_env

    write_keys = write_keys_from_env()
    landing = settings.landing_dir().resolve()
    _progress(f"collecting into {landing} on http://{args.host}:{args.port}/v1/web and /v1/app")
    run_collector(args.host, args.port, landing, write_keys)
    return 0


def _forget(args: argparse.Namespace) -> int:
    from dagster_dmp.erasure import forget

    erasure = forget(email=args.email, person_id=args.person_id)
    _progress(
        f"request {erasure.request_id}: {len(erasure.persons)} person(s), "
        f"{len(erasure.identifiers)} identifier(s) suppressed at ingestion"
    )
    for table, rows in sorted(erasure.removed.items()):
        _progress(f"removed {rows:,} from {table}")
    if erasure.traces:
        for trace in erasure.traces:
            _progress(f"trace left: {trace}")
        raise RuntimeError(f"{len(erasure.traces)} trace(s) of the person remain (listed above)")
    _progress("scan of every table, export and report file: no trace left")
    return 0


def _run(args: argparse.Namespace) -> int:
    import dagster as dg

    from dagster_dmp.definitions import all_asset_checks, all_assets
    from dagster_dmp.resources import build_resources

    _progress(f"materialising '{args.select}' into {settings.duckdb_path()}")
    started = time.perf_counter()
    with _instance() as instance:
        result = dg.materialize(
            [*all_assets, *all_asset_checks],
            selection=args.select,
            resources=build_resources(),
            instance=instance,
            raise_on_error=False,
        )
    if not result.success:
        failed = [event.step_key for event in result.all_events if event.is_step_failure]
        raise RuntimeError(
            f"run failed in step(s): {', '.join(failed) or 'unknown'}; see the log above"
        )
    _progress(f"materialised in {time.perf_counter() - started:.1f}s")
    failed = [check for check in result.get_asset_check_evaluations() if not check.passed]
    for check in failed:
        _progress(
            f"{check.severity.value.lower()}: check {check.asset_key.to_user_string()}:"
            f"{check.check_name} failed{': ' + check.description if check.description else ''}"
        )
    errors = [check for check in failed if check.severity == dg.AssetCheckSeverity.ERROR]
    if errors:
        first = errors[0]
        raise RuntimeError(
            f"{len(errors)} check(s) failed, first {first.asset_key.to_user_string()}:"
            f"{first.check_name}{': ' + first.description if first.description else ''}"
        )
    return 0


def _instance():
    """Runs land in the UI's history when DAGSTER_HOME is set (make sets it); else ephemeral."""
    import dagster as dg

    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _demo(args: argparse.Namespace) -> int:
    from ingestion.importers import IMPORTERS

    _reset_warehouse()
    if args.dataset:
        real_data = Path(
            os.environ.get(
                "DMP_REAL_DATA_DIR", settings.REPO_ROOT.parent / "shared" / "data" / "real"
            )
        )
        # Real data gets a landing folder of its own, so it never mixes with synthetic files.
        landing = settings.landing_dir().with_name(f"landing_{args.dataset}")
        shutil.rmtree(landing, ignore_errors=True)
        os.environ["DMP_LANDING_DIR"] = str(landing)
        args.path, args.out = real_data / IMPORTERS[args.dataset].folder, landing
        if not args.path.is_dir():
            raise FileNotFoundError(
                f"real dataset folder not found: {args.path} (set DMP_REAL_DATA_DIR to the "
                "folder that holds the datasets)"
            )
        _import(args)
    else:
        args.out = settings.landing_dir()
        _generate(args)
    args.select = "*"
    _run(args)
    print(f"Report: {settings.reports_dir() / 'index.html'}")
    return 0


def _reset_warehouse() -> None:
    """A demo starts from an empty warehouse: ingestion is incremental and would keep old rows."""
    from ingestion.pipeline import pipelines_dir

    database = settings.duckdb_path()
    _progress(f"starting from an empty warehouse at {database}")
    for path in (database, database.with_name(database.name + ".wal")):
        path.unlink(missing_ok=True)
    shutil.rmtree(pipelines_dir(database), ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
