"""`python -m qa0_label`: a thin command-line layer over the library.

Exit codes (docs/cli.md): 0 success, 2 bad input (message names file, row, column), 1 other failure.
Heavy libraries (scikit-learn, modAL) are imported only inside the commands that need them, so that
`label` starts fast.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qa0_label.cli_checks import (
    Failure,
    UserError,
    check_utf8_arguments,
    end_progress_line,
    input_path,
    non_empty,
    non_negative_float,
    non_negative_int,
    open_engine,
    output_path,
    positive_int,
    progress_line,
    reading,
    say,
    silence_stdout,
    writing,
)

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2


def _engine(args: argparse.Namespace, *, must_exist: bool = False) -> Any:
    """The engine for --db (see open_engine); MUST_EXIST for every command that does not add data."""
    return open_engine(args, must_exist=must_exist)


def _labeler_arg(name: str) -> str:
    """A --labeler value, normalised and checked like every name (bad ones: exit 2 with the reason)."""
    from qa0_label.store.labels import LabelError, normalize_name

    try:
        return normalize_name(name)
    except LabelError as exc:
        raise UserError(str(exc)) from None


def _settings(args: argparse.Namespace) -> Any:
    from qa0_label.config import load_settings

    return load_settings(args.db)


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, indent=2, sort_keys=False, default=str))


def _progress_printer(quiet: bool) -> Callable[[float, str], None] | None:
    if quiet:
        return None

    def show(fraction: float, message: str) -> None:
        progress_line(f"[{fraction * 100:5.1f}%] {message:<60}")
        if fraction >= 1.0:
            end_progress_line()

    return show


# --- commands ----------------------------------------------------------------------------------


def cmd_simulate(args: argparse.Namespace) -> int:
    """Add simulated EBs (and optionally simulated AoD labels)."""
    if args.n < 0 or args.aods < 0 or args.labeled < 0:
        raise UserError("--n, --aods and --labeled must not be negative")
    if args.labeled and not args.aods:
        raise UserError("--labeled needs --aods K (how many simulated AoDs give the labels)")
    if args.details_for is not None and args.details_for < 0:
        raise UserError("--details-for must not be negative")
    from qa0_label.sim.simulate import simulate

    try:
        summary = simulate(
            engine=_engine(args),
            n=args.n,
            seed=args.seed,
            aods=args.aods,
            labeled=args.labeled,
            details_for=args.details_for,
            progress=_progress_printer(args.quiet or args.json),
        )
    except ValueError as exc:  # e.g. more labels asked for than EBs x AoDs can give
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        # simulate removed what it had written before letting the interrupt through (all or nothing).
        end_progress_line()
        print("interrupted: nothing was added (the EBs written so far were removed)", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        _print_json(summary)
    else:
        for key, value in summary.items():
            print(f"{key}: {value}")
    return EXIT_OK


def _bar_printer() -> Callable[[float, str], None]:
    """A terminal progress bar (one line redrawn in place) for long first-start work."""
    width = 30

    def show(fraction: float, message: str) -> None:
        frac = min(max(float(fraction), 0.0), 1.0)
        done = int(round(frac * width))
        progress_line(f"[{'#' * done}{'.' * (width - done)}] {frac * 100:3.0f}% {message[:60]:<60}")

    return show


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Seed an empty database with the demo EBs and labels (what the app does on first start); idempotent."""
    import os
    import time

    from qa0_label.sim.demo import DEMO_EBS, seed_demo_if_empty

    if os.environ.get("QA0_SEED_DEMO", "1").strip().lower() in ("0", "false", "no", "off") and not args.force:
        print("QA0_SEED_DEMO is off: demo data not seeded", file=sys.stderr)
        return EXIT_OK
    t0 = time.perf_counter()
    engine = _engine(args)
    print(f"Preparing demo data ({DEMO_EBS:,} simulated EBs, once per database)…", file=sys.stderr)
    seeded = seed_demo_if_empty(engine=engine, progress=None if args.quiet else _bar_printer())
    if seeded:
        print(f"\nDemo data ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    else:
        print("Database already has EBs (or another process is seeding it): nothing to do", file=sys.stderr)
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    """Import EBs (and optionally detail rows) from CSV or Parquet, all or nothing."""
    from qa0_label.ingest import ImportInterrupted, ImportRefused, import_file

    try:
        summary = import_file(
            engine=_engine(args),
            path=args.path,
            details_path=args.details,
            progress=_progress_printer(args.quiet),
        )
    except ImportRefused as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportInterrupted as exc:
        # The import is one transaction: interrupted before its commit, it rolled back.
        end_progress_line()
        if exc.committed:
            print("interrupted after the import was written: its EBs are in the database", file=sys.stderr)
        else:
            print("interrupted: nothing was imported", file=sys.stderr)
        return EXIT_FAILURE
    for key, value in summary.items():
        print(f"{key}: {value}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    """Export label events (or current labels) to CSV or Parquet."""
    out: Path = args.out
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise UserError(f"{out}: --out must end in .csv or .parquet")
    alpha = _alpha_arg(args.alpha)
    if alpha is not None and not args.predictions:
        raise UserError("--alpha applies to --predictions only")
    if args.predictions or args.catalogue:
        return _export_auto(args, out, alpha)
    from qa0_label.ingest import export_labels

    engine = _engine(args, must_exist=True)
    with writing("--out", out):
        n = export_labels(engine=engine, out=out, current=args.current)
    print(f"wrote {n} {'current labels' if args.current else 'label events'} to {out}")
    return EXIT_OK


def _alpha_arg(raw: str | None) -> float | None:
    if raw is None:
        return None
    from qa0_label.automation.calibrate import AlphaError, check_alpha

    try:
        return check_alpha(raw)
    except AlphaError as exc:
        raise UserError(f"--alpha: {exc}") from None


def _export_auto(args: argparse.Namespace, out: Path, alpha: float | None) -> int:
    """export --predictions / --catalogue (auto-QA0)."""
    if args.predictions and args.catalogue:
        raise UserError("--predictions and --catalogue are two exports: give one of them")
    if args.current:
        raise UserError("--current applies to label exports, not to --predictions or --catalogue")
    from qa0_label.automation import predict as ap

    engine = _engine(args, must_exist=True)
    if args.catalogue:
        frame = ap.catalogue_frame(engine=engine)
        with writing("--out", out):
            n = ap.write_table(frame, out)
        counts = frame["qa0_basis"].value_counts().to_dict() if n else {}
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        print(f"wrote {n} Pass EBs to {out}" + (f" ({detail})" if detail else ""))
        return EXIT_OK
    result = ap.predictions(engine=engine, alpha=alpha)
    if result["model_version"] is None:
        # A file of "needs_aod" for every EB would read as the model's verdict downstream; there is no model yet.
        raise UserError("no model yet: run retrain first (nothing was written)")
    with writing("--out", out):
        n = ap.write_table(ap.predictions_frame(result), out)
    print(f"wrote {n} predictions to {out} (alpha {result['alpha']:g}, model v{result['model_version']})")
    if result["why_none"]:
        print(f"note: no EB is auto-decided: {result['why_none']}", file=sys.stderr)
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    """The model's decision per EB at error rate alpha (needs_aod where it may not decide alone)."""
    alpha = _alpha_arg(args.alpha)
    from qa0_label.automation import predict as ap

    engine = _engine(args, must_exist=True)
    eb_ids = None
    if args.uids is not None:
        path: Path = args.uids
        try:
            with reading("--uids", path):
                eb_ids = ap.check_uids(engine, path)
        except ap.UnknownUids as exc:
            raise UserError(str(exc)) from None
        except UnicodeDecodeError:
            raise UserError(f"--uids {path}: not UTF-8 text") from None
    result = ap.predictions(engine=engine, eb_ids=eb_ids, alpha=alpha)
    if result["why_none"]:
        print(f"note: no EB is auto-decided: {result['why_none']}", file=sys.stderr)
    if args.json:
        sys.stdout.write(json.dumps(result["items"], separators=(",", ":")))
        sys.stdout.write("\n")
        return EXIT_OK
    counts: dict[str, int] = {}
    for item in result["items"]:
        counts[item["decision"]] = counts.get(item["decision"], 0) + 1
    model = "no model yet" if result["model_version"] is None else f"model v{result['model_version']}"
    print(f"{model}, alpha {result['alpha']:g}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for item in result["items"][:20]:
        why = "; ".join(r["text"] for r in item["top_reasons"])
        print(f"  {item['uid']}  {item['decision']}  {'|'.join(item['set'])}  {why}")
    if len(result["items"]) > 20:
        print(f"  ... {len(result['items']) - 20} more (use --json or export --predictions)")
    return EXIT_OK


def cmd_label(args: argparse.Namespace) -> int:
    """Record one label for the EB with this uid."""
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import LabelError, eb_id_for_uid, normalize_value, record_label

    labeler = _labeler_arg(args.labeler)
    try:
        value = normalize_value(args.value)
        with session_scope(_engine(args, must_exist=True), write=True) as session:
            eb_id = eb_id_for_uid(session=session, uid=args.uid)
            event = record_label(session=session, eb_id=eb_id, labeler=labeler, value=value, comment=args.comment)
            event_id = event.id
    except LabelError as exc:
        raise UserError(str(exc)) from None
    print(f"recorded {value} for {args.uid!r} by {labeler!r} (event {event_id})")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """One EB as the review page shows it: header values and the warnings list."""
    from qa0_label.review import checks, view
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import LabelError, eb_id_for_uid

    try:
        with session_scope(_engine(args, must_exist=True)) as session:
            eb_id = eb_id_for_uid(session=session, uid=args.uid)
            payload = checks.header_json(view.eb_header(session=session, eb_id=eb_id))
    except (LabelError, view.EBNotFound) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        _print_json(payload)
        return EXIT_OK
    for key, value in payload.items():
        if key != "warnings" and not isinstance(value, (dict, list)):
            print(f"{key}: {value}")
    if not payload["warnings"]:
        print("warnings: none (no metric crosses an AoD limit)")
    for w in payload["warnings"]:
        print(f"{w['level'].upper():4} {w['field']}: {w['text']}")
    return EXIT_OK


def cmd_role(args: argparse.Namespace) -> int:
    """Show a labeler's role, or set it (an unknown name only becomes a lead); set a lead's passphrase."""
    from qa0_label.access.authz import set_passphrase
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import LabelError, find_labeler, set_role

    name = _labeler_arg(args.name)
    if args.set_passphrase and args.role != "lead":
        raise UserError("--set-passphrase goes with the lead role: role NAME lead --set-passphrase")
    passphrase = _read_passphrase() if args.set_passphrase else None
    write = args.role is not None
    # Only `lead` may start a database (the owner names its first lead); showing or `aod` need a roster.
    engine = _engine(args, must_exist=args.role != "lead")
    try:
        with session_scope(engine, write=write) as session:
            if args.role is None:
                person = find_labeler(session=session, name=name)
                if person is None:
                    raise UserError(f"no labeler named {name!r}")
            else:
                # The database owner makes the first lead of a new database this way, so a new name may
                # become a lead; an AoD joins from the app, so `aod` with an unknown name is a typo.
                person = set_role(session=session, name=name, role=args.role, create=args.role == "lead")
                if passphrase is not None:
                    set_passphrase(session=session, name=person.name, passphrase=passphrase)
            shown, role = person.name, person.role
    except LabelError as exc:
        raise UserError(str(exc)) from None
    print(f"{shown}: {role}" + (" (passphrase set)" if passphrase is not None else ""))
    return EXIT_OK


def _read_passphrase() -> str:
    """The new passphrase: asked twice without echo on a terminal; else the first line of stdin (scripts)."""
    import getpass

    if sys.stdin is not None and sys.stdin.isatty():
        first = getpass.getpass("New lead passphrase: ")
        if getpass.getpass("Repeat it: ") != first:
            raise UserError("the two passphrases differ; nothing was changed")
        return first
    line = sys.stdin.readline() if sys.stdin is not None else ""
    return line.rstrip("\r\n")


def cmd_rename(args: argparse.Namespace) -> int:
    """A lead renames a labeler (the database owner's tool: --lead names who is recorded as doing it)."""
    from qa0_label.access.authz import Requester
    from qa0_label.access.names import rename_labeler
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import LabelError, NotAllowed

    try:
        with session_scope(_engine(args, must_exist=True), write=True) as session:
            person = rename_labeler(
                session=session, requester=Requester.owner(_labeler_arg(args.lead)), old=args.old, new=args.new
            )
            shown = person.name
    except (LabelError, NotAllowed) as exc:
        raise UserError(str(exc)) from None
    print(f"renamed {args.old!r} to {shown!r}")
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    """A lead merges one labeler into another: labels re-attributed, history kept."""
    from qa0_label.access.authz import Requester
    from qa0_label.access.names import merge_labelers
    from qa0_label.store.db import session_scope
    from qa0_label.store.labels import LabelError, NotAllowed

    try:
        with session_scope(_engine(args, must_exist=True), write=True) as session:
            n = merge_labelers(
                session=session, requester=Requester.owner(_labeler_arg(args.lead)), source=args.source, into=args.into
            )
    except (LabelError, NotAllowed) as exc:
        raise UserError(str(exc)) from None
    print(f"merged {args.source!r} into {args.into!r}: {n} label events moved")
    return EXIT_OK


def cmd_next(args: argparse.Namespace) -> int:
    """The EB this AoD should review next, and why."""
    from qa0_label.queue.assign import UnknownStrategy, next_for

    labeler = _labeler_arg(args.labeler)
    try:
        result = next_for(
            engine=_engine(args, must_exist=True), labeler=labeler, strategy=args.strategy, settings=_settings(args)
        )
    except UnknownStrategy as exc:
        raise UserError(str(exc)) from None
    if result is None:
        if args.json:
            _print_json(None)
        else:
            print("nothing left to review for this labeler")
        return EXIT_OK
    if args.json:
        _print_json(result)
    else:
        print(f"{result['uid']}  ({result['strategy']}, uncertainty {result['uncertainty']})")
    return EXIT_OK


def cmd_retrain(args: argparse.Namespace) -> int:
    """Train, score the pool and store a model run."""
    from qa0_label.learning.training import RetrainRefused, RetrainRunning, retrain

    try:
        result = retrain(
            engine=_engine(args, must_exist=True),
            settings=_settings(args),
            trigger="cli",
            progress=_progress_printer(args.quiet or args.json),
        )
    except (RetrainRunning, RetrainRefused) as exc:
        # Refusals (docs/cli.md): too few labels, or another run in progress (named, so the user can wait for it).
        raise UserError(str(exc)) from None
    if args.json:
        _print_json(result)
    else:
        metrics = result.get("metrics", {})
        print(
            f"model version {result['version']} from {result['n_labels']} labels: "
            f"macro-F1 {metrics.get('macro_f1', float('nan')):.3f}, "
            f"balanced accuracy {metrics.get('balanced_accuracy', float('nan')):.3f}"
        )
    return EXIT_OK


def cmd_agreement(args: argparse.Namespace) -> int:
    """Agreement statistics over each labeler's current label (accepted suggestions left out unless asked)."""
    from qa0_label.lead.agreement import agreement_report
    from qa0_label.lead.report import own_calls, per_aod_table
    from qa0_label.store.db import session_scope

    with session_scope(_engine(args, must_exist=True)) as session:
        labels, left_out = own_calls(session=session, include_accepted=args.include_accepted)
        per_aod = per_aod_table(session=session, include_accepted=args.include_accepted)
    report = agreement_report(labels)
    report["accepted_suggestions_left_out"] = left_out
    # The lead page's per-AoD table; NaN (nothing to compare) becomes null so the output stays valid JSON.
    table = per_aod["table"].astype(object)
    report["per_aod"] = table.where(table.notna(), None).to_dict(orient="records")
    report["per_aod_model_version"] = per_aod["model_version"]
    if args.json:
        _print_json(report)
    else:
        print(f"items rated by at least two labelers: {report['n_items']}")
        for pair in report["cohen_kappa"]:
            print(f"  Cohen kappa {pair['a']} vs {pair['b']}: {pair['kappa']:.3f} over {pair['n']} EBs")
        for pair in report.get("cohen_kappa_undefined", []):
            print(f"  Cohen kappa {pair['a']} vs {pair['b']}: undefined over {pair['n']} EBs")
        for key in ("fleiss_kappa", "krippendorff_alpha_nominal", "krippendorff_alpha_ordinal"):
            value = report.get(key)
            print(f"{key}: {'n/a' if value is None else f'{value:.3f}'}")
        for note in report.get("notes", []):
            print(f"note: {note}")
        if report["per_aod"]:
            print("per AoD (the lead page's table):")
        for row in report["per_aod"]:
            print(
                f"  {row['labeler']}: {row['n_labels']} labels, {_share(row['agreement_with_consensus'])} "
                f"agree with the others' majority over {row['n_vs_consensus']} EBs, "
                f"with the model {_share(row['agreement_with_model'])}, gold {_share(row['gold_accuracy'])}"
            )
        if report["accepted_suggestions_left_out"]:
            print(
                f"left out: {report['accepted_suggestions_left_out']} accepted model suggestions "
                "(--include-accepted counts them)"
            )
    return EXIT_OK


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def cmd_backup(args: argparse.Namespace) -> int:
    """Consistent copy of a live SQLite database."""
    from qa0_label.store.db import backup_sqlite

    engine = _engine(args, must_exist=True)
    try:
        with writing("--out", args.out):
            size = backup_sqlite(engine, args.out)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    print(f"backed up to {args.out} ({size / 1e6:.1f} MB)")
    return EXIT_OK


def _benchmark_al(args: argparse.Namespace) -> int:
    """The app's loop, random order and plain modAL replayed by an oracle on a labelled table."""
    from qa0_label.bench import al
    from qa0_label.bench.datasets import BenchInputError, csv_table, parse_map

    try:
        table = None
        if args.csv:
            if not args.label_column:
                raise BenchInputError(f"{args.csv}: --label-column COL is needed with --csv")
            table = csv_table(args.csv, args.label_column, parse_map(args.map))
        elif args.label_column or args.map:
            raise BenchInputError("--label-column and --map go with --csv PATH")
        result = al.run_benchmark(
            dataset=None if table is not None else args.dataset,
            table=table,
            seeds=args.seeds,
            budget=args.budget,
            strategy=args.strategy,
            progress=_progress_printer(args.quiet),
            first_seed=args.first_seed,
            horizon=args.horizon,
        )
    except BenchInputError as exc:
        raise UserError(str(exc)) from None
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{result['dataset']}: {result['seeds']} seeds, budget {result['budget']} labels, pool {result['pool']}")
    print(f"{'arm':20s} {'AUC':>7s} {'F1@budget':>10s} {'labels to 98%':>14s} {'Fail recall @10%':>17s}  (medians)")
    for arm, med in result["medians"].items():
        cells = [med["auc"], med["f1_at_budget"], med["labels_to_98"], med["fail_recall_at_10pct"]]
        shown = ["-" if v is None else f"{v:.3f}" if isinstance(v, float) and v < 2 else f"{v:.0f}" for v in cells]
        print(f"{arm:20s} {shown[0]:>7s} {shown[1]:>10s} {shown[2]:>14s} {shown[3]:>17s}")
    for key, value in result["ratios"].items():
        print(f"{key}: {'-' if value is None else value}")
    return EXIT_OK


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Performance and label-efficiency figures."""
    if args.what == "al":
        return _benchmark_al(args)
    elif args.what == "scale":
        from qa0_label.bench.scale import run_scale_benchmark
        from qa0_label.config import database_url
        from qa0_label.learning.training import RetrainRefused

        _engine(args)  # the pool is built in --db (created if missing): refuse a bad URL before any work
        try:
            result = run_scale_benchmark(
                url=database_url(args.db),
                pool=args.pool,
                details_for=args.details_for,
                aods=args.aods,
                labels=args.labels,
                calls=args.calls,
                writers=args.writers,
                writer_iterations=args.writer_iterations,
                think_ms=args.think_ms,
                retrain=not args.no_retrain,
                seed=args.seed,
                progress=_progress_printer(args.json),
                cli_main=main,
            )
        except RetrainRefused as exc:  # a new pool with too few labels to train on
            raise UserError(f"{exc} (give --labels N, or --no-retrain)") from None
    else:
        raise UserError(f"unknown benchmark {args.what!r}")
    if args.json:
        _print_json(result)
    else:
        for key, value in result.items():
            if not isinstance(value, (list, dict)):
                print(f"{key}: {value}")
    return EXIT_OK


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every command."""
    from qa0_label import bench  # the dataset names only (no pandas)

    parser = argparse.ArgumentParser(prog="python -m qa0_label", description="QA0 labelling with active learning")
    parser.add_argument(
        "--db", type=non_empty, help="database URL (default: $QA0_DATABASE_URL or sqlite:///db/qa0.sqlite)"
    )
    # --db is accepted before or after the command name; after it, it overrides.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=non_empty, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    _add = sub.add_parser

    def add_parser(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return _add(name, parents=[common], **kwargs)

    sub.add_parser = add_parser  # type: ignore[method-assign]

    p = sub.add_parser("simulate", help="add realistic simulated EBs")
    p.add_argument("--n", type=int, required=True, help="number of EBs to add")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--aods", type=int, default=0, help="number of simulated AoDs giving labels")
    p.add_argument("--labeled", type=int, default=0, help="number of labels the simulated AoDs give")
    p.add_argument(
        "--details-for",
        type=int,
        default=None,
        metavar="M",
        help="detail rows only for the first M new EBs (default: all); makes big pools cheap",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("seed-demo", help="seed an empty database with the demo EBs and labels (make run does this)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="seed even when QA0_SEED_DEMO is off")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("import", help="import EBs from CSV or Parquet (all or nothing)")
    p.add_argument("path", type=input_path)
    p.add_argument("--details", type=input_path, help="CSV or Parquet of per antenna x spw x scan rows")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("export", help="export label events or current labels")
    p.add_argument("--out", type=output_path, required=True)
    p.add_argument("--current", action="store_true", help="only each labeler's current label per EB")
    p.add_argument("--predictions", action="store_true", help="the model's decision per EB (auto-QA0)")
    p.add_argument("--catalogue", action="store_true", help="Pass EBs as Source Catalogue rows")
    p.add_argument("--alpha", default=None, help="max error rate of auto-decisions for --predictions, in (0, 0.5)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("predict", help="the model's decision per EB at error rate alpha (auto-QA0)")
    p.add_argument("--uids", type=input_path, default=None, help="file with one uid per line (default: every EB)")
    p.add_argument("--alpha", default=None, help="max error rate of auto-decisions, in (0, 0.5) (default: the lead's)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("label", help="record one label")
    p.add_argument("uid")
    p.add_argument("--labeler", required=True)
    p.add_argument("--value", required=True, help="Pass, SemiPass or Fail (any case)")
    p.add_argument("--comment")
    p.set_defaults(func=cmd_label)

    p = sub.add_parser("show", help="one EB's header values and warnings, as the review page shows them")
    p.add_argument("uid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("role", help="show or set a labeler's role (aod, lead)")
    p.add_argument("name")
    p.add_argument("role", nargs="?", choices=["aod", "lead"], help="the new role; omit to show the current one")
    p.add_argument(
        "--set-passphrase",
        action="store_true",
        help="with lead: set the passphrase that unlocks lead actions in the app (asked twice; stdin in scripts)",
    )
    p.set_defaults(func=cmd_role)

    p = sub.add_parser("rename", help="rename a labeler (a lead's roster change, recorded in the history)")
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--lead", required=True, help="the team lead recorded as making the change")
    p.set_defaults(func=cmd_rename)

    p = sub.add_parser("merge", help="merge labeler SOURCE into INTO (labels re-attributed, history kept)")
    p.add_argument("source")
    p.add_argument("into")
    p.add_argument("--lead", required=True, help="the team lead recorded as making the change")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("next", help="the EB this labeler should review next")
    p.add_argument("--labeler", required=True)
    p.add_argument("--strategy", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_next)

    p = sub.add_parser("retrain", help="train, score the pool, store a model run")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser("agreement", help="agreement statistics")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--include-accepted", action="store_true", help="count labels that accepted the model's suggestion (key A)"
    )
    p.set_defaults(func=cmd_agreement)

    p = sub.add_parser("backup", help="consistent copy of a live SQLite database")
    p.add_argument("--out", type=output_path, required=True)
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("benchmark", help="performance figures")
    bsub = p.add_subparsers(dest="what", required=True)
    b = bsub.add_parser(
        "al", parents=[common], help="the app's active-learning loop against random order and plain modAL"
    )
    b.add_argument("--dataset", default="qa0-sim", choices=list(bench.AL_DATASETS))
    b.add_argument(
        "--csv", type=input_path, metavar="PATH", help="your own labelled table instead of --dataset (numeric columns)"
    )
    b.add_argument("--label-column", metavar="COL", help="the --csv column holding Pass/SemiPass/Fail")
    b.add_argument("--map", metavar="V=QA0,...", help="translate --csv label values, e.g. good=Pass,bad=Fail")
    b.add_argument(
        "--budget", type=positive_int, default=None, help="labels per arm for AUC / F1 (default per dataset)"
    )
    b.add_argument("--strategy", default=None, help="the app arm's strategy (default: the app's default)")
    b.add_argument("--seeds", type=positive_int, default=8)
    b.add_argument(
        "--horizon",
        type=positive_int,
        default=None,
        help="labels scanned for labels-to-98%% (default: five times the budget)",
    )
    b.add_argument(
        "--first-seed", type=non_negative_int, default=1, help="seeds FIRST..FIRST+SEEDS-1 (split a long run)"
    )
    b.add_argument("--json", action="store_true")
    b.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    b.set_defaults(func=cmd_benchmark)
    b = bsub.add_parser("scale", parents=[common], help="next/label/retrain/detail latency on a pool of N EBs")
    b.add_argument(
        "--pool", type=positive_int, required=True, help="EBs in the pool (built with the simulator, or reused)"
    )
    b.add_argument("--details-for", type=non_negative_int, default=7500, help="EBs that get detail rows when building")
    b.add_argument("--aods", type=positive_int, default=4, help="simulated AoDs labelling the new pool")
    b.add_argument("--labels", type=non_negative_int, default=5000, help="labels the simulated AoDs give the new pool")
    b.add_argument("--calls", type=positive_int, default=300, help="sequential next + label calls")
    b.add_argument("--writers", type=non_negative_int, default=0, help="concurrent AoDs (threads, then processes)")
    b.add_argument("--writer-iterations", type=positive_int, default=30, help="next + label rounds per concurrent AoD")
    b.add_argument(
        "--think-ms",
        type=non_negative_float,
        default=0.0,
        help="pause after each concurrent label (0.5-1.5 x this; 0 = back-to-back stress)",
    )
    b.add_argument("--no-retrain", action="store_true", help="skip the retrain phase (uses the last model)")
    b.add_argument("--seed", type=non_negative_int, default=100)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_benchmark)
    return parser


def _sweep_spools() -> None:
    """Start-up: remove import spools that killed imports left behind (kill -9 cannot clean up after itself)."""
    from qa0_label.ingest.spool import sweep_stale_spools

    try:
        sweep_stale_spools()
    except OSError:  # an unreadable temp directory must not stop a command
        pass


@functools.lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    # Built once per process: building it costs ~1.5 ms of CPU (argparse, gettext), three times what a `next`
    # or `label` itself costs, and a long-lived caller (benchmark scale's CLI processes, scripts) pays it on
    # every command. Parsing does not change the parser, so reusing it is safe.
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage message
        return EXIT_BAD_INPUT if exc.code else EXIT_OK
    try:
        check_utf8_arguments(parser, args)
        _sweep_spools()
        code = int(args.func(args))
        # Flush here, not at interpreter exit, so that a reader that went away is handled below.
        sys.stdout.flush()
        return code
    except UserError as exc:
        say(f"error: {exc}")
        return EXIT_BAD_INPUT
    except Failure as exc:
        say(f"error: {exc}")
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader of our output went away (`| head`, `| true`): stop quietly, like other Unix tools, with
        # exit 1 (docs/cli.md). stdout points at devnull so the interpreter's last flush does not fail again.
        silence_stdout()
        return EXIT_FAILURE
    except KeyboardInterrupt:
        say("interrupted")
        return EXIT_FAILURE
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback for users
        say(f"error: {type(exc).__name__}: {exc}")
        if __import__("os").environ.get("QA0_DEBUG"):
            raise
        return EXIT_FAILURE
