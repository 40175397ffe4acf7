"""Salience's database layer: SQLAlchemy models, sessions, migrations and data functions.

No Qt, no torch, no engine imports. ``app`` builds the engine at start-up
(``db.session.make_engine``), upgrades the schema (``db.migrate.upgrade``) and owns the session
scope, one per user action (``with factory.begin() as session:``). Every data function takes that
session as its first argument.

Blinding is a rule of this layer: reader-facing queries are scoped to one reader
(``db.readings.readings_for_reader``); reading across readers is only possible through the
coordinator-only ``db.export.export_readings``, which checks the role.

Reader studies:

* ``db.accounts``: accounts, audited sign-in; ``db.permissions``: what each role may do.
* ``db.study_spec``: a study's design as plain values and the rules of each answer kind;
  ``db.study_plan``: the seeded assignment plans of the four designs (pure functions);
  ``db.study_examples``: the two example designs.
* ``db.studies``: a coordinator's study life (create, edit until the first reading, extend,
  open, close).
* ``db.study_reader`` (what a reader's screen may see) and ``db.study_reading`` (what a reader
  writes): the only study functions a reader's window calls; ``db.study_pixels``: the app's
  resolver from a case token to the image, never handed to the screen.
* ``db.study_progress``: progress without answers, who is behind, the key;
  ``db.study_export``: long-format records for the statistics (closed studies, audited);
  ``db.study_materials``: each case's grid and frozen maps under its pseudonym, for the report
  and the annotation exports.
"""
