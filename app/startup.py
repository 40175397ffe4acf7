"""Start-up: the data folder, the migrated database, the signed-in reader."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.settings import Settings, use_added_bundles
from db import migrate, readers
from db.session import make_engine, make_session_factory


def prepare_database(settings: Settings) -> str:
    """Create the data folder and migrate the database to the newest schema; returns the revision."""
    settings.ensure_home()
    migrate.upgrade(settings.db_url)
    return migrate.current_revision(settings.db_url)


def open_database(settings: Settings) -> sessionmaker[Session]:
    """Migrate the database, let the engine find the site's added bundles, and return a session
    factory bound to the database."""
    prepare_database(settings)
    use_added_bundles(settings.home)
    return make_session_factory(make_engine(settings.db_url))


def open_workstation(settings: Settings):
    """Migrate, sign in the reader named in the settings (created as a reader without a password
    if new), and build the workstation. For tests and scripts; the window signs in through
    ``app.sign_in.SignInDesk``."""
    from app.workstation import SalienceWorkstation

    factory = open_database(settings)
    with factory.begin() as session:
        reader = readers.get_or_create_reader(session, username=settings.reader, role="reader")
        reader_id = reader.id
    return SalienceWorkstation(settings, factory, reader_id)
