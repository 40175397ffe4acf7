"""``app`` owns logging: libraries' tracebacks and warnings go to the log file in the data folder,
the terminal gets Salience's own one-line messages, and ``--verbose`` shows the rest."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import warnings

import pytest

from app.logs import configure_logging


@pytest.fixture(scope="module")
def noisy_dicom() -> str:
    """pydicom's 12-bit JPEG Extended file: Pillow cannot decode it, pydicom logs the traceback
    and decodes it with another plugin, so the file opens fine."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPGExtended.dcm")
    if path is None:
        pytest.skip("pydicom's test file JPGExtended.dcm is not installed")
    return str(path)


def _inspect(path: str, home, *options: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, SALIENCE_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "app.cli", *options, "inspect", path],
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_librarys_traceback_goes_to_the_log_not_the_terminal(noisy_dicom, tmp_path):
    """``salience inspect`` of a file a decoder complains about prints the JSON alone."""
    result = _inspect(noisy_dicom, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert json.loads(result.stdout)["source"] == noisy_dicom
    log = (tmp_path / "salience.log").read_text(encoding="utf-8")
    assert "Traceback" in log and "pydicom" in log and "JPEG Extended" in log


def test_verbose_shows_the_librarys_traceback_on_the_terminal(noisy_dicom, tmp_path):
    result = _inspect(noisy_dicom, tmp_path, "--verbose")
    assert result.returncode == 0
    assert "Traceback" in result.stderr and "JPEG Extended" in result.stderr
    json.loads(result.stdout)  # stdout still holds the JSON alone


def test_a_command_that_logs_nothing_leaves_no_log_behind(glioma_case, tmp_path):
    result = _inspect(str(glioma_case), tmp_path / "home")
    assert result.returncode == 0 and result.stderr == ""
    assert not (tmp_path / "home").exists()


@pytest.fixture
def routed(tmp_path, capsys):
    """Logging configured as the CLI does."""
    log_file = tmp_path / "data" / "salience.log"
    configure_logging(log_file)
    return log_file  # tests/app/conftest.py undoes the routing after each test


def test_python_warnings_are_logged_not_printed(routed, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library's deprecation", UserWarning, stacklevel=1)
    assert capsys.readouterr().err == ""
    assert "a library's deprecation" in routed.read_text(encoding="utf-8")


def test_salience_messages_reach_the_terminal_as_one_line(routed, capsys):
    """Salience's own error prints its message once, without the traceback the file keeps;
    a library's error prints nothing."""
    try:
        raise ValueError("inner detail")
    except ValueError:
        logging.getLogger("engine.imaging.probe").error("could not read frame 3", exc_info=True)
        logging.getLogger("somelibrary").error("library noise", exc_info=True)
    err = capsys.readouterr().err
    assert err == "salience: error: could not read frame 3\n"
    text = routed.read_text(encoding="utf-8")
    assert "could not read frame 3" in text and "ValueError: inner detail" in text and "library noise" in text


def test_configuring_twice_does_not_double_the_output(routed, capsys):
    configure_logging(routed)
    logging.getLogger("app.probe").warning("once")
    assert capsys.readouterr().err == "salience: warning: once\n"
    assert routed.read_text(encoding="utf-8").count("once") == 1


def test_an_unexpected_error_is_one_line_with_the_traceback_in_the_log(tmp_path, monkeypatch, capsys):
    """A bug prints one line that says where the details are; the log holds the traceback."""
    from app import cli

    def broken(_args):
        raise RuntimeError("boom")

    monkeypatch.setenv("SALIENCE_HOME", str(tmp_path))
    monkeypatch.setattr(cli, "cmd_inspect", broken)
    assert cli.main(["inspect", "anything"]) == cli.EXIT_INTERNAL
    log_file = tmp_path / "salience.log"
    assert capsys.readouterr().err == (f"salience: error: internal error: RuntimeError: boom "
                                       f"(details in {log_file})\n")
    text = log_file.read_text(encoding="utf-8")
    assert "Traceback" in text and 'raise RuntimeError("boom")' in text
