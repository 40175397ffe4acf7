"""``salience analyse-cohort``: the command around ``app.cohort.analyse_cohort``.

A one-line progress bar on stderr when it is a terminal (nothing otherwise, so logs stay clean),
one line per failed case, and the JSON summary on stdout. The first Ctrl-C stops the run after
the batch in progress (every case stored so far stays stored; the same command resumes); a second
one stops at once.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

#: Exit status when the run finished but some cases failed (each named on stderr).
EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130


class TerminalProgress:
    """A ``Progress`` drawn as one updated line on a terminal; silent when the stream is not one.

    Args:
        stream: where the bar goes (stderr).
        interval: least seconds between two redraws (the last one is always drawn).
    """

    def __init__(self, stream: TextIO | None = None, interval: float = 0.1):
        self._stream = stream or sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._interval = interval
        self._last = 0.0
        self._shown = ""
        self._stop = False

    def report(self, fraction: float, message: str = "") -> None:
        if not self._tty:
            return
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < self._interval:
            return
        self._last = now
        width = shutil.get_terminal_size((100, 20)).columns - 1
        filled = int(24 * min(max(fraction, 0.0), 1.0))
        line = f"[{'#' * filled}{'.' * (24 - filled)}] {fraction:6.1%}  {message}"[:width]
        self._stream.write("\r" + line.ljust(len(self._shown)))
        self._stream.flush()
        self._shown = line

    def cancelled(self) -> bool:
        return self._stop

    def stop(self) -> None:
        """Ask the work to stop at its next check."""
        self._stop = True

    def print_line(self, text: str) -> None:
        """Print a line above the bar (the bar is redrawn by the next report)."""
        self.clear()
        print(text, file=self._stream, flush=True)

    def clear(self) -> None:
        if self._tty and self._shown:
            self._stream.write("\r" + " " * len(self._shown) + "\r")
            self._stream.flush()
            self._shown = ""


@contextmanager
def first_interrupt_stops(progress: TerminalProgress) -> Iterator[None]:
    """Within the block, the first Ctrl-C asks ``progress`` to stop; the second interrupts at once."""
    def handler(signum, frame):
        if progress.cancelled():
            raise KeyboardInterrupt
        progress.stop()
        progress.print_line("salience: stopping after the batch in progress (Ctrl-C again to stop at once)")

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: leave Ctrl-C as it is
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


#: ``--device`` and ``--half`` as ``engine.device`` names them, spelled here so that building the
#: command line loads no torch (a test ties them together).
DEVICE_CHOICES = "auto|cpu|cuda[:N]"
HALF_CHOICES = ("bf16", "fp16")


def add_device_options(parser: argparse.ArgumentParser, half: bool = True) -> None:
    """``--device`` (and ``--half``) for a command that runs a model."""
    parser.add_argument("--device", default="auto",
                        help=f"where the model runs: {DEVICE_CHOICES} (default auto: CUDA when torch sees it)")
    if half:
        parser.add_argument("--half", choices=HALF_CHOICES,
                            help="run the network in half precision (torch.autocast: bf16 on the CPU or CUDA, fp16 "
                            "on CUDA); the first case is also run in float32 and the difference reported")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """The ``analyse-cohort`` subcommand."""
    parser = sub.add_parser(
        "analyse-cohort",
        help="analyse and explain every case of a worklist or folder into the database (resumable)",
        description="Analyse and explain every case into the database, as the window stores them; cases already "
        "stored with the same bundle weights and methods are skipped, so an interrupted run resumes. Prints a JSON "
        f"summary; exits {EXIT_SOME_FAILED} when some cases failed (each named on stderr).",
    )
    parser.add_argument("source", metavar="WORKLIST|FOLDER",
                        help="a text or CSV worklist of paths, a folder (every image below it), an image, or the demo "
                        "worklist: demo or demo:TASK")
    parser.add_argument("--bundle", required=True, help="bundle name (e.g. glioma) or folder")
    parser.add_argument("--methods", default="gradcam",
                        help="comma-separated CAM methods, default gradcam (`salience explain --list` lists them); "
                        "'none' stores predictions only")
    parser.add_argument("--classes", choices=["all", "shown"], default="all",
                        help="explain every class (default) or only the class a reviewer looks at first")
    add_device_options(parser)
    parser.add_argument("--batch", type=int, default=32, help="items (slices, frames, tiles) per forward pass (default 32)")
    parser.add_argument(
        "--uncertainty", choices=["none", "auto", "tta", "mc-dropout"], default="none",
        help="also measure and store each case's uncertainty: Monte Carlo dropout, test-time augmentation, or auto "
        "(MC dropout when the network has dropout); costs --samples forward passes per item more (default none)")
    parser.add_argument("--samples", type=int, default=16, help="draws per item for the uncertainty (default 16)")


def run(args: argparse.Namespace, stdout=None) -> tuple[dict, int]:
    """Run the command; returns the JSON summary and the exit status."""
    from app.cohort import CohortInterrupted, CohortStore, analyse_cohort, cohort_sources
    from app.settings import Settings
    from db.blobs import BlobStore
    from db.migrate import upgrade
    from db.session import make_engine, make_session_factory
    from engine.errors import SalienceError
    from engine.models.bundle import load_bundle

    if args.batch < 1:
        raise SalienceError(f"--batch must be at least 1, got {args.batch}")
    settings = Settings.from_env()
    cases = cohort_sources(args.source, settings.demo_data)
    methods = [] if args.methods.strip().lower() == "none" else [m.strip() for m in args.methods.split(",") if m.strip()]
    bundle = load_bundle(args.bundle, device=args.device)
    settings.ensure_home()
    upgrade(settings.db_url)  # as app.startup.prepare_database, without the window's imports
    store = CohortStore(make_session_factory(make_engine(settings.db_url)), BlobStore(settings.blob_root))
    progress = TerminalProgress()
    try:
        with first_interrupt_stops(progress):
            summary = analyse_cohort(
                cases, bundle, methods, store, progress, half=args.half, batch_size=args.batch,
                classes="shown" if args.classes == "shown" else None,
                on_failure=lambda failure: progress.print_line(f"salience: failed: {failure.line()}"),
                uncertainty=None if args.uncertainty == "none" else args.uncertainty, samples=args.samples,
            )
    except CohortInterrupted as stopped:
        progress.clear()
        print("salience: interrupted; run the same command again to analyse the rest", file=sys.stderr)
        return stopped.summary.to_dict(), EXIT_INTERRUPTED
    progress.clear()
    return summary.to_dict(), EXIT_SOME_FAILED if summary.failures else 0
