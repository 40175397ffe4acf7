"""The set-up script installs (or names) every system library the real window needs.

On a fresh Debian machine with a display, ``installers/salience-dev run`` stopped at once: Qt's
xcb platform plugin links libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1 and friends, which
nothing installed or mentioned. The script's package list must cover what the plugin links.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "installers" / "salience-dev"


def _packages() -> set[str]:
    out = subprocess.run(["bash", str(SCRIPT), "gui-packages"], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def debian_package(soname: str) -> str:
    """Debian's package name of a shared library by its soname (Debian policy 8.1):
    ``libxcb-icccm.so.4`` -> ``libxcb-icccm4``, ``libxkbcommon-x11.so.0`` -> ``libxkbcommon-x11-0``."""
    stem, version = re.fullmatch(r"(.+)\.so\.(\d+)(?:\..*)?", soname).groups()
    stem = stem.lower()
    return f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"


def test_soname_rule():
    assert debian_package("libxcb-icccm.so.4") == "libxcb-icccm4"
    assert debian_package("libxkbcommon-x11.so.0") == "libxkbcommon-x11-0"
    assert debian_package("libX11-xcb.so.1") == "libx11-xcb1"


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is not available on this system")
def test_the_list_covers_every_x_library_the_qt_plugin_links():
    import PySide6

    qt = Path(PySide6.__file__).parent / "Qt"
    linked = subprocess.run(
        ["ldd", str(qt / "plugins" / "platforms" / "libqxcb.so"), str(qt / "lib" / "libQt6XcbQpa.so.6")],
        capture_output=True, text=True,
    ).stdout
    sonames = {line.split()[0] for line in linked.splitlines() if ".so" in line and "=>" in line}
    x_libraries = {name for name in sonames if re.match(r"lib(xcb|xkb|X11)", name)}
    assert {"libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1"} <= x_libraries
    packages = _packages()
    missing = sorted(debian_package(name) for name in x_libraries if debian_package(name) not in packages)
    assert not missing, f"installers/salience-dev GUI_PACKAGES lacks {missing}"
    assert {"libgl1", "libegl1", "libfontconfig1", "libdbus-1-3", "libglib2.0-0"} <= packages


def test_headless_runs_need_no_gui_libraries():
    """Tests and headless subcommands run offscreen: the GUI check is skipped there."""
    text = SCRIPT.read_text()
    assert '[ "${QT_QPA_PLATFORM:-}" = "offscreen" ] && return 0' in text


def test_the_torch_build_is_cpu_or_cuda_and_anything_else_stops_before_installing(tmp_path):
    """``SALIENCE_TORCH`` picks the build of torch; a misspelt one stops at once (status 2, one
    line) instead of installing the wrong build. ``torch_is`` tells the builds apart on this venv."""
    import os
    import sys

    import torch

    env = {**os.environ, "SALIENCE_TORCH": "rocm"}
    bad = subprocess.run(["bash", str(SCRIPT), "setup"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.strip() == "salience-dev: SALIENCE_TORCH=rocm: expected cpu (the default) or cuda"
    function = re.search(r"^torch_is\(\) \{.*?^\}", SCRIPT.read_text(), re.S | re.M).group(0)
    build = "cuda" if torch.version.cuda else "cpu"
    other = "cpu" if build == "cuda" else "cuda"
    probe = (f'py={sys.executable}; TORCH_VERSION={torch.__version__.split("+")[0]}\n{function}\n'
             f'torch_is {build} && echo same; torch_is {other} || echo other')
    out = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["same", "other"]
