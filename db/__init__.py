"""Salience's database layer: SQLAlchemy models, sessions, migrations and data functions.

No Qt, no torch, no engine imports. ``app`` builds the engine at start-up
(``db.session.make_engine``), upgrades the schema (``db.migrate.upgrade``) and owns the session
scope, one per user action (``with factory.begin() as session:``). Every data function takes that
session as its first argument.

Blinding is a rule of this layer: reader-facing queries are scoped to one reader
(``db.readings.readings_for_reader``); reading across readers is only possible through the
coordinator-only ``db.export.export_readings``, which checks the role.
"""
