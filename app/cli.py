"""The ``salience`` command: the workstation window and headless subcommands that print JSON.

    salience                          start the workstation (same as ``salience gui``)
    salience inspect FILE             what was read: kind, shape, spacing, orientation, modality
    salience predict --bundle NAME FILE [--device auto|cpu|cuda[:N]] [--half bf16|fp16]
    salience explain --bundle NAME --method gradcam FILE -o OUT.nii.gz|OUT.npy [--device ...] [--half ...]
    salience analyse-cohort WORKLIST|FOLDER|demo[:TASK] --bundle NAME --methods gradcam,eigencam,...
                                      analyse and explain every case into the database (resumable)
    salience bundle add PATH [--replace] | list | remove NAME
                                      a site's own MONAI bundles (folder or .zip), checked, beside the shipped ones
    salience train TASK [...]         reproduce a shipped bundle (glioma, glioma-grade, lung-ultrasound, histopathology)
    salience evaluate TASK [...]      measure a bundle on its held-back patients; write its model card
    salience bench cam|io|viewer [...]  benchmarks that print ratios and medians measured in one run
    salience db upgrade               migrate the database to the newest schema
    salience agreement FILE.csv [--level nominal|ordinal|interval|ratio]
    salience mrmc FILE.imrmc [--covariance jackknife|delong]
    salience study report ID -o report.html|report.pdf
    salience study export ID --format csv|json|imrmc|nifti|geojson|seg -o DIR
    salience user add NAME --role reader|coordinator|admin     (app.study_cli)
    salience study example|create|assign|open|close|status|worklist ...

Bad input never ends in a traceback: the command prints one line naming the file and what is
wrong, and exits with status 2. Unexpected errors print one line and log the traceback to the
log file in the data folder, where libraries' warnings and tracebacks go too (``app.logs``);
``--verbose`` shows them on the terminal.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from app.cohort_cli import add_device_options
from app.cohort_cli import add_parser as add_cohort_parser
from app.logs import configure_logging
from app.settings import LOG_NAME, Settings, data_folder, use_added_bundles

log = logging.getLogger("salience")

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _print_json(payload: dict) -> None:
    print(json.dumps(payload, indent=2, default=_json_default))


def cmd_inspect(args: argparse.Namespace) -> int:
    from app import headless

    _print_json(headless.inspect(args.file))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from app import headless

    uncertainty = None if args.uncertainty == "none" else args.uncertainty
    _print_json(headless.predict(args.file, args.bundle, per_item=not args.summary, uncertainty=uncertainty,
                                 samples=args.samples, device=args.device, half=args.half))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from app import headless

    _print_json(
        headless.explain(
            args.file,
            args.bundle,
            args.method,
            Path(args.output),
            class_name=args.target_class,
            all_classes=args.all_classes,
            with_quality=args.quality,
            score=args.score,
            device=args.device,
            half=args.half,
        )
    )
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    from app import bundles

    if args.action == "add":
        _print_json(bundles.add(args.path, replace=args.replace))
    elif args.action == "remove":
        _print_json(bundles.remove(args.name))
    else:
        _print_json(bundles.listing())
    return 0


def cmd_analyse_cohort(args: argparse.Namespace) -> int:
    from app import cohort_cli

    summary, code = cohort_cli.run(args)
    _print_json(summary)
    return code


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    """Run the recipe a task registered (``TaskSpec.train``) to reproduce its shipped bundle."""
    from engine.models.task_registry import task_names, task_spec

    recipes = [name for name in task_names() if task_spec(name).train is not None]
    if args.task not in recipes:
        print(f"salience: error: no training recipe for task {args.task!r} (known: {', '.join(recipes)})", file=sys.stderr)
        return EXIT_BAD_INPUT
    return task_spec(args.task).train(rest)


def cmd_evaluate(args: argparse.Namespace, rest: list[str]) -> int:
    """Measure a bundle on the held-back part of its recipe's split (``engine.training.evaluate``)."""
    from engine.training.evaluate import main

    _print_json(main(args.task, rest))
    return 0


def cmd_bench(args: argparse.Namespace, rest: list[str]) -> int:
    import importlib

    package = "app.bench_viewer" if args.suite == "viewer" else f"engine.bench.{args.suite}"  # the viewer bench needs Qt
    module = importlib.import_module(package)
    return module.main(rest)


def cmd_db(args: argparse.Namespace) -> int:
    from app import startup

    settings = Settings.from_env()
    revision = startup.prepare_database(settings)
    _print_json({"database": settings.db_url, "revision": revision})
    return 0


def cmd_agreement(args: argparse.Namespace) -> int:
    from app import stats_cli

    categories = [c.strip() for c in args.categories.split(",")] if args.categories else None
    _print_json(stats_cli.agreement_report(args.file, args.level, categories))
    return 0


def cmd_mrmc(args: argparse.Namespace) -> int:
    from app import stats_cli

    _print_json(stats_cli.mrmc_report(args.file, args.covariance))
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    return args.study_handler(args)


def cmd_gui(args: argparse.Namespace) -> int:
    from app import gui

    return gui.run(reader=args.reader, open_path=args.path, verbose=args.verbose)


class _ListMethods(argparse.Action):
    """``--list``: print every CAM method with its paper and exit (before the required arguments
    are checked, like ``--help``)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from engine.explain import METHODS
        from engine.explain.perturbation import PERTURBATION_METHODS
        from engine.models.inference import method_names

        for name in method_names():
            if name in METHODS:
                print(f"{name:16} {'one capture':14} {METHODS[name].paper}")
            else:
                print(f"{name:16} {'many passes':14} {_first_line(PERTURBATION_METHODS[name].__doc__)}")
        parser.exit(0)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="salience", description="Review what a medical-imaging AI sees.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show every log message on stderr, libraries' and tracebacks included")
    sub = parser.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="start the workstation window (the default)")
    gui.add_argument("--reader", help="reader user name (default: your account name)")
    gui.add_argument("path", nargs="?", help="a file or folder to open at start")

    inspect = sub.add_parser("inspect", help="print what was read from FILE as JSON")
    inspect.add_argument("file")

    predict = sub.add_parser("predict", help="run a bundle on FILE and print probabilities as JSON")
    predict.add_argument("--bundle", required=True, help="bundle name (e.g. glioma) or folder")
    predict.add_argument("--summary", action="store_true", help="omit per-slice probabilities")
    predict.add_argument(
        "--uncertainty", choices=["auto", "tta", "mc-dropout", "none"], default="auto",
        help="how the case's uncertainty is estimated: Monte Carlo dropout, test-time augmentation, "
        "auto (MC dropout when the network has dropout, else TTA; the default) or none",
    )
    predict.add_argument("--samples", type=_positive_int, default=16, help="draws per item for the uncertainty (default 16)")
    add_device_options(predict)
    predict.add_argument("file")

    explain = sub.add_parser("explain", help="write a CAM aligned with FILE (NIfTI, .npy, or a PNG/MP4 overlay)")
    explain.add_argument("--bundle", required=True, help="bundle name (e.g. glioma) or folder")
    explain.add_argument("--method", default="gradcam", help="CAM method, default gradcam (`salience explain --list` lists them)")
    explain.add_argument(
        "--score",
        choices=["logit", "probability"],
        help="what the map explains: the class logit (default for gradient methods) or its probability "
        "(default for Score-CAM and occlusion; what a clip verdict or a slide's mean tile probability averages)",
    )
    explain.add_argument("--list", action=_ListMethods, help="list the CAM methods with their papers and exit")
    explain.add_argument("--class", dest="target_class", help="class name or index (default: the most likely)")
    explain.add_argument("--all-classes", action="store_true", help="write one map per class (.npy only)")
    explain.add_argument(
        "--quality",
        action="store_true",
        help="also measure the map on the most likely slice: deletion/insertion AUC, pointing game and "
        "energy inside the image's mask, and the weight-randomisation sanity check",
    )
    explain.add_argument(
        "-o",
        "--output",
        required=True,
        help="OUT.nii.gz, OUT.nii or OUT.npy for volumes; OUT.npy or OUT.png (overlay) for a patch or a "
        "slide; OUT.npy or OUT.mp4 (overlay video) for a clip",
    )
    add_device_options(explain)
    explain.add_argument("file")

    bundle = sub.add_parser("bundle", help="add, list or remove your own model bundles")
    bundle_actions = bundle.add_subparsers(dest="action", required=True)
    bundle_add = bundle_actions.add_parser(
        "add", help="check a MONAI bundle (folder or .zip) and add it to the data folder; prints its CAM layer")
    bundle_add.add_argument("path", help="the bundle folder, its configs/metadata.json, or a .zip of it")
    bundle_add.add_argument("--replace", action="store_true", help="replace an added bundle of the same name")
    bundle_actions.add_parser("list", help="list the shipped and the added bundles")
    bundle_remove = bundle_actions.add_parser("remove", help="remove an added bundle")
    bundle_remove.add_argument("name")
    add_cohort_parser(sub)

    # train, evaluate and bench pass their remaining arguments (and -h) on to the recipe or the benchmark.
    train = sub.add_parser("train", help="train a shipped bundle from ../shared/data", add_help=False)
    train.add_argument("task", help="glioma, glioma-grade, lung-ultrasound or histopathology")

    evaluate = sub.add_parser("evaluate", help="measure a bundle on held-back patients, write its model card",
                              add_help=False)
    evaluate.add_argument("task", help="glioma, glioma-grade, lung-ultrasound or histopathology (the tasks that register an evaluation)")

    bench = sub.add_parser("bench", help="benchmarks: ratios measured side by side in one run", add_help=False)
    bench.add_argument("suite", choices=["cam", "io", "viewer"])

    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])

    agreement = sub.add_parser("agreement", help="inter-reader agreement of a long-format CSV (reader,case,value) as JSON")
    agreement.add_argument("--level", choices=["nominal", "ordinal", "interval", "ratio"], default="nominal",
                           help="level of measurement of the answers (default nominal)")
    agreement.add_argument("--categories", help="the full ordered answer scale, comma-separated (e.g. none,mild,severe)")
    agreement.add_argument("file")

    mrmc = sub.add_parser("mrmc", help="Obuchowski-Rockette MRMC ROC analysis of an iMRMC file as JSON")
    mrmc.add_argument("--covariance", choices=["jackknife", "delong"], default="jackknife",
                      help="how the AUC error covariances are estimated (default jackknife)")
    mrmc.add_argument("file")

    from app.study_cli import add_study_parsers  # the user and study groups

    add_study_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("train", "evaluate", "bench"):
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    log_file = data_folder() / LOG_NAME
    configure_logging(log_file, verbose=args.verbose)
    use_added_bundles()
    command = args.command or "gui"
    if command == "gui" and not hasattr(args, "reader"):
        args.reader, args.path = None, None
    from engine.errors import SalienceError

    try:
        if command in ("train", "evaluate", "bench"):
            code = {"train": cmd_train, "evaluate": cmd_evaluate, "bench": cmd_bench}[command](args, rest)
        else:
            handlers = {"inspect": cmd_inspect, "predict": cmd_predict, "explain": cmd_explain, "db": cmd_db, "gui": cmd_gui,
                        "agreement": cmd_agreement, "mrmc": cmd_mrmc, "study": cmd_study, "user": cmd_study,
                        "bundle": cmd_bundle, "analyse-cohort": cmd_analyse_cohort}
            code = handlers[command](args)
        sys.stdout.flush()  # a closed pipe shows up here, where it can be handled, not at exit
        return code
    except SalienceError as exc:
        print(f"salience: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("salience: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (``salience predict ... | head``)
        devnull = open(os.devnull, "w")  # noqa: SIM115 - stdout must stay valid until exit
        os.dup2(devnull.fileno(), sys.stdout.fileno())
        return 141
    except Exception as exc:  # one line for the user, the traceback for the log
        log.error("internal error: %s: %s (details in %s)", type(exc).__name__, exc, log_file, exc_info=True)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
