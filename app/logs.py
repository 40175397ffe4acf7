"""Where log records go: ``app`` owns logging for the CLI and the window.

* The log file in the data folder (``Settings.log_file``) gets every record at INFO and above,
  with its traceback: Salience's own and those of the libraries it uses (a decoder that logs a
  traceback for a frame it could not decode, then falls back to another and succeeds), and
  Python ``warnings``.
* The terminal gets Salience's own warnings and errors as one line each, no traceback.
* ``--verbose`` shows everything on the terminal as well, debug messages and tracebacks included.

The file and its folder are created on the first record, so a command that logs nothing leaves
nothing behind.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

#: Top-level packages whose loggers speak for Salience (the rest are libraries).
OWN_PACKAGES = frozenset({"salience", "app", "ui", "engine", "db"})
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_VERBOSE_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _DataFolderLog(logging.FileHandler):
    """The log file, opened (and its folder made) on the first record; a file that cannot be
    written costs one line on stderr, not a logging traceback per record."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self._complained = False

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if not self._complained:
            self._complained = True
            error = sys.exc_info()[1]
            print(f"salience: cannot write the log {self.baseFilename}: {error}", file=sys.stderr)


class _Terminal(logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is when the record comes, not as it was when configured."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _OneLine(logging.Formatter):
    """``salience: warning: <message>``: the message alone, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return f"salience: {record.levelname.lower()}: {record.getMessage()}"


def _is_own(record: logging.LogRecord) -> bool:
    return record.name.split(".", 1)[0] in OWN_PACKAGES


def configure_logging(log_file: Path | None, verbose: bool = False) -> None:
    """Route log records and Python warnings as the module docstring says.

    Calling it again replaces what an earlier call installed (tests call the CLI's ``main``
    many times in one process).

    Args:
        log_file: the data folder's log file; None logs to no file.
        verbose: also show every record, debug messages and tracebacks, on stderr.
    """
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_salience", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = []
    if log_file is not None:
        to_file = _DataFolderLog(Path(log_file))
        to_file.setLevel(logging.INFO)
        to_file.setFormatter(logging.Formatter(_FILE_FORMAT))
        handlers.append(to_file)
    terminal = _Terminal()
    if verbose:
        terminal.setLevel(logging.DEBUG)
        terminal.setFormatter(logging.Formatter(_VERBOSE_FORMAT))
    else:
        terminal.setLevel(logging.WARNING)
        terminal.setFormatter(_OneLine())
        terminal.addFilter(_is_own)
    handlers.append(terminal)
    for handler in handlers:
        handler._salience = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.captureWarnings(True)
