"""Start-up: the data folder, the migrated database, the signed-in reader."""

from __future__ import annotations

from app.settings import Settings, use_added_bundles
from db import migrate, readers
from db.session import make_engine, make_session_factory


def prepare_database(settings: Settings) -> str:
    """Create the data folder and migrate the database to the newest schema; returns the revision."""
    settings.ensure_home()
    migrate.upgrade(settings.db_url)
    return migrate.current_revision(settings.db_url)


def open_workstation(settings: Settings):
    """Migrate, sign in the reader named in the settings, and build the workstation."""
    from app.workstation import SalienceWorkstation

    prepare_database(settings)
    use_added_bundles(settings.home)
    factory = make_session_factory(make_engine(settings.db_url))
    with factory.begin() as session:
        reader = readers.get_or_create_reader(session, username=settings.reader, role="reader")
        reader_id = reader.id
    return SalienceWorkstation(settings, factory, reader_id)
