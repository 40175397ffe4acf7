"""Where Salience keeps its data, and how a run is configured.

Defaults are embedded: a SQLite database and a content-addressed map store in the user's data
folder, demo cases from ``../shared/data`` beside a source checkout. Environment variables
override them (tests and multi-site deployments use them):

* ``SALIENCE_HOME``: the data folder (database, maps, logs, the models a site added in ``bundles``).
* ``SALIENCE_DB_URL``: a SQLAlchemy URL, e.g. ``postgresql+psycopg://...`` for multi-site studies.
* ``SALIENCE_DEMO_DATA``: the folder that holds the demo datasets (``glioma-lgg``, ...).
* ``SALIENCE_READER``: the account preselected at sign-in and acting on the command line
  (defaults to the OS account name).
* ``SALIENCE_SINGLE_USER``: ``1`` turns on single-user mode, in which an account created without
  a password signs in without one (a workstation used by one person); off by default.
* ``SALIENCE_DEVICE``: where the window runs models: ``auto`` (the default: CUDA when torch sees
  it, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``. When set it overrides the window's
  Analysis > Device menu (which then says so and is disabled).
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_data_dir

APP_NAME = "Salience"
LOG_NAME = "salience.log"  # in the data folder
DEVICE_ENV = "SALIENCE_DEVICE"  # the environment variable that fixes where models run
BUNDLES_DIR = "bundles"  # in the data folder: the bundles added with ``salience bundle add``


def data_folder() -> Path:
    """The data folder: ``SALIENCE_HOME``, else the user's data folder for Salience."""
    return Path(os.environ.get("SALIENCE_HOME") or user_data_dir(APP_NAME, appauthor=False))


def _default_demo_data() -> Path:
    # In a source checkout: <repo>/app/settings.py -> <repo>/../shared/data
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    demo_data: Path
    reader: str
    device: str = "auto"
    single_user: bool = False
    device_from_env: bool = False  # SALIENCE_DEVICE chose ``device``: the window may not change it

    @property
    def blob_root(self) -> Path:
        return self.home / "maps"

    @property
    def log_file(self) -> Path:
        return self.home / LOG_NAME

    @property
    def bundles(self) -> Path:
        """The folder of the bundles a site added."""
        return self.home / BUNDLES_DIR

    @classmethod
    def from_env(cls, reader: str | None = None) -> "Settings":
        from db.session import sqlite_url  # here, so a command that needs no database loads no SQLAlchemy

        home = data_folder()
        db_url = os.environ.get("SALIENCE_DB_URL") or sqlite_url(home / "salience.db")
        demo = Path(os.environ.get("SALIENCE_DEMO_DATA") or _default_demo_data())
        try:
            default_reader = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry in some containers
            default_reader = "reader"
        name = reader or os.environ.get("SALIENCE_READER") or default_reader
        chosen = (os.environ.get(DEVICE_ENV) or "").strip()
        single = os.environ.get("SALIENCE_SINGLE_USER", "").strip().lower() in ("1", "true", "yes", "on")
        return cls(home=home, db_url=db_url, demo_data=demo, reader=name, device=chosen or "auto",
                   single_user=single, device_from_env=bool(chosen))

    def ensure_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.blob_root.mkdir(parents=True, exist_ok=True)


def use_added_bundles(home: Path | None = None) -> None:
    """Point ``engine.models.metadata`` at ``BUNDLES_DIR`` in ``home`` (default: ``data_folder()``),
    so ``list_bundles`` and ``load_bundle`` see the bundles added there beside the shipped ones."""
    from engine.models.metadata import set_user_bundles_root

    set_user_bundles_root((home if home is not None else data_folder()) / BUNDLES_DIR)
