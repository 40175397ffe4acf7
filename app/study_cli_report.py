"""``salience study report`` and ``salience study export``: a closed study's report and exports.

    salience study report ID -o report.html|report.pdf [--positive CLASS] [--images png|svg]
    salience study export ID --format csv|json|imrmc|nifti|geojson|seg -o DIR [--positive CLASS]

Both act as a coordinator or admin account (``--as NAME``, default ``SALIENCE_READER`` or the
OS account name); an account with a password is asked for it (from the terminal, or the first
line of stdin when piped; never an argument). Both print JSON: what was written, and for the
report which sections apply. ``add_report_parsers`` adds the two subcommands to the ``study``
command group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.settings import Settings
from engine.errors import SalienceError

#: ``app.study_exports.EXPORT_FORMATS``, named here so that building the parser imports nothing heavy.
EXPORT_CHOICES = ("csv", "json", "imrmc", "ai", "nifti", "geojson", "seg")


def add_report_parsers(study_subparsers) -> None:
    """Add ``report`` and ``export`` to the ``salience study`` subparsers (``args.study_handler`` runs them)."""
    report = study_subparsers.add_parser("report", help="write a closed study's report as one HTML file or a PDF")
    report.add_argument("study_id", type=int, metavar="ID", help="the study's id")
    report.add_argument("-o", "--output", required=True, help="report.html (plots embedded) or report.pdf")
    report.add_argument("--images", choices=["png", "svg"], default="png", help="how the HTML embeds plots (default png)")
    _common(report)
    report.set_defaults(study_handler=cmd_study_report)

    export = study_subparsers.add_parser("export", help="export a closed study (de-identified) into a folder")
    export.add_argument("study_id", type=int, metavar="ID", help="the study's id")
    export.add_argument("--format", required=True, choices=EXPORT_CHOICES,
                        help="csv/json: long-format records; imrmc: scores for `salience mrmc`, iMRMC and RJafroc; "
                             "ai: the frozen AI output per case with its uncertainty (CSV); "
                             "nifti/geojson/seg: region answers as label maps, QuPath annotations or DICOM SEG")
    export.add_argument("-o", "--output", required=True, help="the folder to write into (created if missing)")
    _common(export)
    export.set_defaults(study_handler=cmd_study_export)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--positive", help="the class ROC and MRMC call abnormal (default: the class the probability "
                                           "question names, e.g. 'COVID-19' in 'Probability of COVID-19')")
    parser.add_argument("--as", dest="account", help="coordinator or admin account (default: SALIENCE_READER or your account name)")


def signed_in(settings: Settings, username: str | None):
    """``(session factory, account id)`` of the account the command acts for, signed in by the
    one rule of the study commands (``app.accounts.act_as``: its password, or single-user mode
    for an account without one; every attempt audited).

    Raises:
        SalienceError: no such account, a wrong or missing password.
    """
    from app.accounts import act_as
    from app.startup import prepare_database
    from db.session import make_engine, make_session_factory

    prepare_database(settings)
    factory = make_session_factory(make_engine(settings.db_url))
    return factory, act_as(factory, settings, username).id


def cmd_study_report(args: argparse.Namespace) -> int:
    """Compute the report of study ``args.study_id`` and write it to ``args.output``."""
    from app.study_report import audit_written, build_study_report
    from app.study_report_render import write_report
    from engine.stats.study_report import NotApplicable

    settings = Settings.from_env()
    factory, account = signed_in(settings, args.account)
    output = Path(args.output)
    report = build_study_report(factory, account, args.study_id, settings.blob_root, positive=args.positive)
    write_report(report, output, args.images)
    audit_written(factory, account, args.study_id, "study.report_written", {"format": output.suffix.lower().lstrip(".")})
    sections = {key: ("applies" if not isinstance(section, NotApplicable) else f"does not apply: {section.reason}")
                for key, _, section in report.sections()}
    print(json.dumps({"study_id": args.study_id, "report": str(output), "sections": sections}, indent=2))
    return 0


def cmd_study_export(args: argparse.Namespace) -> int:
    """Export study ``args.study_id`` in ``args.format`` into the folder ``args.output``."""
    from app.study_exports import export_study

    settings = Settings.from_env()
    factory, account = signed_in(settings, args.account)
    result = export_study(factory, account, args.study_id, args.format, args.output, positive=args.positive)
    print(json.dumps({"study_id": args.study_id, **result.to_dict()}, indent=2))
    return 0
