"""``salience user ...`` and ``salience study ...``: accounts and reader studies, in JSON.

    salience user add NAME --role reader|coordinator|admin [--no-password] [--as ADMIN]
    salience user list
    salience study example pocovid|glioma-sequential [--format yaml|json]
    salience study create FILE            [--as COORDINATOR]
    salience study list                   [--as ...]
    salience study assign ID --reader NAME [NAME ...]
    salience study open ID [--starts-on YYYY-MM-DD]
    salience study close ID
    salience study status ID
    salience study worklist ID [--reader NAME]
    salience study report|export ID ...   (app.study_cli_report)

Who acts: ``--as NAME`` (default ``SALIENCE_READER``, else the OS account name), signed in with
its password (asked for, never an argument); see ``app.accounts`` for the rules. ``add_study_parsers``
adds both groups to the top-level subparsers; each subcommand sets ``study_handler``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

from app.settings import Settings
from db.errors import DbError
from engine.errors import SalienceError

ROLE_CHOICES = ("reader", "coordinator", "admin")


def _print(payload: Any) -> None:
    print(json.dumps(payload, indent=2, default=str))


@contextmanager
def _refusals(what: str) -> Iterator[None]:
    """The data layer's refusals as one-line errors naming ``what``."""
    try:
        yield
    except DbError as exc:
        raise SalienceError(f"{what}: {exc}") from None


def _database(args: argparse.Namespace):
    from app.startup import open_database

    settings = Settings.from_env()
    return settings, open_database(settings)


def _acting(args: argparse.Namespace, permission: str | None):
    from app.accounts import act_as

    settings, factory = _database(args)
    return factory, act_as(factory, settings, args.account, permission)


# -- user ---------------------------------------------------------------------------------------
def cmd_user_add(args: argparse.Namespace) -> int:
    from app.accounts import add_account

    settings, factory = _database(args)
    account = add_account(factory, settings, args.name, args.role, acting=args.account, no_password=args.no_password)
    _print({"id": account.id, "username": account.username, "role": account.role, "has_password": account.has_password})
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from db.accounts import list_accounts

    _settings, factory = _database(args)
    with factory() as session:
        _print([{"username": a.username, "display_name": a.display_name, "role": a.role, "has_password": a.has_password}
                for a in list_accounts(session)])
    return 0


# -- study --------------------------------------------------------------------------------------
def cmd_example(args: argparse.Namespace) -> int:
    from app.study_examples import example_study, render

    settings = Settings.from_env()
    sys.stdout.write(render(example_study(args.name, settings.demo_data), args.format, args.name))
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    from app.study_files import read_study_file
    from app.study_freeze import create_from_file
    from db.blobs import BlobStore

    study = read_study_file(args.file)  # before any password is asked: a broken file fails first
    factory, account = _acting(args, "study.create")
    settings = Settings.from_env()
    _print(create_from_file(factory, BlobStore(settings.blob_root), account.id, study))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from db.studies import list_studies

    factory, account = _acting(args, "study.progress")
    with _refusals("study list"), factory() as session:
        _print([asdict(s) for s in list_studies(session, account.id)])
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from db.models import Reader
    from db.studies import add_study_readers, get_study

    factory, account = _acting(args, "study.edit")
    with _refusals(f"study {args.study_id}"), factory.begin() as session:
        ids = []
        for name in args.readers:
            reader_id = session.scalar(sa.select(Reader.id).where(Reader.username == name))
            if reader_id is None:
                raise SalienceError(f"study {args.study_id}: no account named {name!r} (salience user add {name} --role reader)")
            ids.append(reader_id)
        added = add_study_readers(session, account.id, args.study_id, ids)
        study = get_study(session, args.study_id)
        report = {"study_id": study.id, "readers": [r.reader.username for r in study.readers], "assignments_added": added}
    _print(report)  # after the commit: a reader of the output that goes away undoes nothing
    return 0


def cmd_open(args: argparse.Namespace) -> int:
    from db.studies import open_study

    starts_on = None
    if args.starts_on:
        try:
            starts_on = date.fromisoformat(args.starts_on)
        except ValueError:
            raise SalienceError(f"--starts-on {args.starts_on!r}: expected a date YYYY-MM-DD") from None
    factory, account = _acting(args, "study.edit")
    with _refusals(f"study {args.study_id}"), factory.begin() as session:
        study = open_study(session, account.id, args.study_id, starts_on=starts_on)
        report = {"study_id": study.id, "status": study.status, "starts_on": study.starts_on,
                  "sessions": [{"number": s.number, "opens_on": s.opens_on} for s in study.sessions]}
    _print(report)
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from db.studies import close_study

    factory, account = _acting(args, "study.close")
    with _refusals(f"study {args.study_id}"), factory.begin() as session:
        study = close_study(session, account.id, args.study_id)
        report = {"study_id": study.id, "status": study.status, "closed_at": study.closed_at}
    _print(report)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from db.study_progress import study_status

    factory, account = _acting(args, "study.progress")
    with _refusals(f"study {args.study_id}"), factory() as session:
        _print(study_status(session, account.id, args.study_id))
    return 0


def worklist_payload(worklist, reader: str) -> dict[str, Any]:
    """A reader's worklist as JSON: pseudonyms, places, arms, sessions and states; no token, no
    case id, no source."""
    place_of = {e.assignment_id: e.place for e in worklist.entries}
    return {
        "study_id": worklist.study_id, "study": worklist.study_name, "task": worklist.task, "design": worklist.design,
        "reader": reader, "done": worklist.done, "total": worklist.total,
        "resume_at": place_of.get(worklist.resume_at),
        "cases": [
            {"place": e.place, "pseudonym": e.pseudonym, "arm": e.arm, "session": e.session, "state": e.state,
             "available": e.available, "why_not": e.why_not, "repeat": e.repeat}
            for e in worklist.entries
        ],
    }


def cmd_worklist(args: argparse.Namespace) -> int:
    """A reader's own worklist, or (for a coordinator or admin) any reader's."""
    from app.accounts import find_account
    from db.permissions import allowed
    from db.study_reader import reader_worklist

    factory, account = _acting(args, None)
    name = args.reader or account.username
    if name != account.username and not allowed(account.role, "study.progress"):
        raise SalienceError(f"account {account.username!r} ({account.role}) may see only its own worklist")
    reader = find_account(factory, name)
    if reader is None:
        raise SalienceError(f"study {args.study_id}: no account named {name!r}")
    with _refusals(f"study {args.study_id}, reader {name!r}"), factory() as session:
        _print(worklist_payload(reader_worklist(session, reader.id, args.study_id), name))
    return 0


def _as_option(parser: argparse.ArgumentParser, who: str) -> None:
    parser.add_argument("--as", dest="account", metavar="NAME",
                        help=f"the {who} account acting (default: SALIENCE_READER or your OS account name); "
                             "its password is asked for")


def _study_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study_id", type=int, metavar="ID", help="the study's id (salience study list)")


def add_study_parsers(sub) -> None:
    """Add the ``user`` and ``study`` command groups to the top-level subparsers."""
    user = sub.add_parser("user", help="accounts: readers, coordinators, administrators")
    users = user.add_subparsers(dest="user_command", required=True)
    add = users.add_parser("add", help="create an account; its password is asked for (or read from stdin)")
    add.add_argument("name", help="the user name")
    add.add_argument("--role", required=True, choices=ROLE_CHOICES)
    add.add_argument("--no-password", action="store_true",
                     help="an account without a password (single-user mode only: SALIENCE_SINGLE_USER=1)")
    _as_option(add, "administrator (needed once an administrator exists)")
    add.set_defaults(study_handler=cmd_user_add)
    users.add_parser("list", help="the accounts (names and roles, no passwords)").set_defaults(study_handler=cmd_user_list)

    study = sub.add_parser("study", help="reader studies: create from a study file, assign, open, follow, close, report")
    studies = study.add_subparsers(dest="study_command", required=True)
    example = studies.add_parser("example", help="print a complete example study file over the demo data")
    example.add_argument("name", choices=("pocovid", "glioma-sequential"))
    example.add_argument("--format", choices=("yaml", "json"), default="yaml")
    example.set_defaults(study_handler=cmd_example)
    create = studies.add_parser("create", help="create a draft study from a YAML/JSON study file (freezes the AI output)")
    create.add_argument("file")
    _as_option(create, "coordinator")
    create.set_defaults(study_handler=cmd_create)
    listing = studies.add_parser("list", help="every study with its status")
    _as_option(listing, "coordinator")
    listing.set_defaults(study_handler=cmd_list)
    assign = studies.add_parser("assign", help="add readers to a study (their assignments follow the design)")
    _study_id(assign)
    assign.add_argument("--reader", dest="readers", nargs="+", required=True, metavar="NAME")
    _as_option(assign, "coordinator")
    assign.set_defaults(study_handler=cmd_assign)
    opening = studies.add_parser("open", help="open a draft study to its readers")
    _study_id(opening)
    opening.add_argument("--starts-on", help="the first session's date, YYYY-MM-DD (default today)")
    _as_option(opening, "coordinator")
    opening.set_defaults(study_handler=cmd_open)
    closing = studies.add_parser("close", help="close a study: read-only from then on")
    _study_id(closing)
    _as_option(closing, "coordinator")
    closing.set_defaults(study_handler=cmd_close)
    status = studies.add_parser("status", help="progress per reader, arm and session, and who is behind (no answers)")
    _study_id(status)
    _as_option(status, "coordinator")
    status.set_defaults(study_handler=cmd_status)
    worklist = studies.add_parser("worklist", help="a reader's worklist: pseudonyms, order, progress")
    _study_id(worklist)
    worklist.add_argument("--reader", help="whose worklist (default: the acting account's own)")
    _as_option(worklist, "reader's own, or a coordinator")
    worklist.set_defaults(study_handler=cmd_worklist)
    from app.study_cli_report import add_report_parsers  # report and export a closed study

    add_report_parsers(studies)

