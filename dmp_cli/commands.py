"""`dmp`: generate or import channel data, materialise the asset graph in-process, run demos."""

import argparse
import functools
import os
import shutil
import sys
import time
import traceback
from argparse import SUPPRESS
from collections.abc import Sequence
from pathlib import Path

from dagster_dmp import settings
from dagster_dmp.warehouse_lock import EXIT_BUSY, WarehouseBusy, warehouse_lock

DEFAULT_PERSONS = 5000
DEFAULT_DAYS = 60
DEFAULT_SEED = 7


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print(f"dmp {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 -- every error is one line; --debug: traceback
        if args.debug:
            traceback.print_exc()
        print(f"dmp {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_BUSY if isinstance(error, WarehouseBusy) else 1


def _one_line(error: Exception) -> str:
    """Our errors say what is wrong in words; anything else also names its type."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    text = lines[0] if lines else "(no message)"
    if isinstance(error, (ValueError, FileNotFoundError, RuntimeError)):
        return text
    return f"{type(error).__name__}: {text} (run with --debug for the traceback)"


def _parser() -> argparse.ArgumentParser:
    from ingestion.importers import IMPORTERS

    datasets = sorted(IMPORTERS)
    parser = argparse.ArgumentParser(
        prog="dmp",
        description="Open warehouse-native Data Management Platform "
        "(dlt -> DuckDB -> dbt -> ML -> reports).",
        epilog="Paths: DMP_DUCKDB_PATH (warehouse), DMP_LANDING_DIR (input files), "
        "DMP_REPORTS_DIR (report), DMP_SERVING_DIR (published profile snapshots), "
        "DMP_REAL_DATA_DIR (real datasets for --dataset). Engine: DMP_ENGINE "
        "(duckdb, the default, or spark; local Spark keeps its files in DMP_SPARK_DIR).",
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, not one line"
    )
    # Also accepted after the command (`dmp run --debug`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser = functools.partial(commands.add_parser, parents=[common])

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
    run.add_argument(
        "--full",
        action="store_true",
        help="rebuild even when nothing changed since the last run, dbt from scratch "
        "(dbt build --full-refresh; person ids are kept)",
    )
    _add_wait_option(run)
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
    _add_wait_option(demo)
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
    _add_wait_option(forget)
    forget.set_defaults(handler=_forget)

    from serving.profiles import LOOKUP_TYPES

    profile = commands.add_parser(
        "profile",
        help="print one person's whole profile (identifiers, demographics, RFM, interests, "
        "segment, scores, recommendations, audiences, consent) from the published snapshot",
    )
    by = profile.add_mutually_exclusive_group(required=True)
    by.add_argument("--person-id", help="the person's id")
    by.add_argument("--email", help="an e-mail address (normalised and hashed as stored)")
    by.add_argument("--phone", help="a phone number (its digits, hashed as stored)")
    by.add_argument(
        "--identifier",
        nargs=2,
        metavar=("TYPE", "VALUE"),
        help=f"any identifier; TYPE one of {', '.join(LOOKUP_TYPES)}",
    )
    profile.add_argument("--json", action="store_true", help="print the profile as JSON")
    profile.set_defaults(handler=_profile)

    serve = commands.add_parser(
        "serve",
        help="serve the read API (profiles, audiences, recommendations) from the published "
        "snapshot; read keys from DMP_READ_KEYS='name:KEY,name2:KEY2'; OpenAPI at /openapi.json",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default: %(default)s)"
    )
    serve.add_argument("--port", type=int, default=8282, help="port (default: %(default)s)")
    serve.set_defaults(handler=_serve)
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


def _add_wait_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help=f"when another run holds the warehouse, exit {EXIT_BUSY} at once instead of waiting",
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
    from privacy.erasure import forget

    with warehouse_lock(settings.duckdb_path(), "dmp forget", wait=args.wait, on_wait=_progress):
        erasure = forget(email=args.email, person_id=args.person_id, progress=_progress)
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


def _profile(args: argparse.Namespace) -> int:
    import json

    from serving import profiles
    from serving.snapshot import opened

    if args.identifier:
        kind, value = args.identifier
    else:
        kind, value = next(
            (kind, getattr(args, kind))
            for kind in ("person_id", "email", "phone")
            if getattr(args, kind) is not None
        )
    with opened(settings.serving_dir()) as (manifest, con):
        person_id = profiles.find_person(con, kind, value)
        document = profiles.profile(con, person_id) if person_id else None
    if document is None:
        raise RuntimeError(f"not found: no person holds this {kind.replace('_', ' ')}")
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    _progress(f"snapshot {manifest.snapshot}, published {manifest.age_seconds():.0f}s ago")
    for part, value in document.items():
        if part == "person_id":
            print(f"person_id: {value}")
        elif isinstance(value, dict):
            print(f"{part}:")
            for key, item in value.items():
                print(f"  {key}: {'-' if item is None else item}")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            print(f"{part}:")
            for item in value:
                print("  " + "  ".join(f"{key}={item[key]}" for key in item))
        else:
            shown = ", ".join(value) if isinstance(value, list) else value
            print(f"{part}: {shown if shown not in (None, '') else '-'}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from serving.api import read_keys_from_env, run_server
    from serving.snapshot import current

    read_keys = read_keys_from_env()
    serving = settings.serving_dir()
    manifest = current(serving)
    _progress(
        f"serving {serving} on http://{args.host}:{args.port} (OpenAPI: /openapi.json); "
        + (
            f"snapshot {manifest.snapshot}, {manifest.persons:,} persons"
            if manifest
            else "no snapshot yet: answers 503 until a run publishes one"
        )
    )
    run_server(args.host, args.port, serving, read_keys)
    return 0


def _run(args: argparse.Namespace) -> int:
    from dmp_cli import build_state

    settings.engine()  # a wrong DMP_ENGINE stops the run before it starts
    database = settings.duckdb_path()
    full = getattr(args, "full", False)
    holder = f"dmp {args.command}"
    # The lock first: the build state is read and written by the one run that holds it.
    with warehouse_lock(database, holder, wait=args.wait, on_wait=_progress):
        inputs = build_state.current_inputs()
        last = None if full else build_state.up_to_date_run(database, args.select, inputs)
        if last is not None:
            _progress(
                f"nothing new since run {last.run_id} ({last.finished_at:%Y-%m-%d %H:%M:%S %Z}): "
                "same landing files, code and settings; use --full to rebuild"
            )
            return 0
        run_id = build_state.new_run_id()
        build_state.record_start(database, run_id, args.select, full, inputs)
        succeeded = False
        try:
            succeeded = _materialise(args.select, full, holder, args.wait)
        finally:
            build_state.record_end(database, run_id, succeeded)
    return 0


def _materialise(selection: str, full: bool, holder: str, wait: bool) -> bool:
    """Run the selection; raise with a one-line reason when a step or a blocking check failed."""
    from dagster_dmp.runner import run_assets, summarise

    outcome = run_assets(
        selection,
        full_refresh=full,
        holder=holder,
        wait=wait,
        progress=_progress,
    )
    summarise(outcome, _progress)
    if not outcome.success:
        step, message = next(iter(outcome.failed_steps.items()), ("unknown", ""))
        raise RuntimeError(
            f"run failed in {len(outcome.failed_steps)} step(s), first {step}: {message}"
        )
    errors = outcome.failed_blocking_checks()
    if errors:
        first = errors[0]
        raise RuntimeError(
            f"{len(errors)} check(s) failed, first {first.asset_key.to_user_string()}:"
            f"{first.check_name}"
        )
    return True


def _demo(args: argparse.Namespace) -> int:
    settings.engine()  # a wrong DMP_ENGINE stops the demo before it resets anything
    # The whole demo holds the warehouse: nobody else's run sees it half reset.
    with warehouse_lock(settings.duckdb_path(), "dmp demo", wait=args.wait, on_wait=_progress):
        _demo_run(args)
    print(f"Report: {settings.reports_dir() / 'index.html'}")
    return 0


def _demo_run(args: argparse.Namespace) -> None:
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
