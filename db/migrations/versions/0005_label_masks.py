"""Label masks: an annotation may be a ``"mask"``, the run-length encoded pixels of one label on
one slice (``geometry = {"encoding": "rle-rows", "shape": [rows, cols], "counts": [...]}`` in
``index:slice,row,col``).

Revision ID: 0005
Revises: 0003 (re-pointed to 0004 when merged after it)
Create Date: 2026-11-30

Only the CHECK constraint on ``annotations.kind`` changes. SQLite cannot alter a constraint, so
the table is rebuilt in batch mode (PostgreSQL alters it in place). The old constraint is found
by reflection, because databases made by 0001 named it ``ck_annotations_ck_annotations_kind``
(the naming convention applied to a full name) while ``create_all`` names it
``ck_annotations_kind``; the new one is ``ck_annotations_kind`` as the model says.

Downgrade refuses while any mask annotation exists and changes nothing: the older schema cannot
hold a mask, and dropping a reader's painted regions silently would lose part of a locked
reading. Delete those readings' masks first if the downgrade is really wanted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from db.errors import MigrationError

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

CONSTRAINT = "ck_annotations_kind"
OLD_KINDS = ("point", "box", "polygon")
NEW_KINDS = (*OLD_KINDS, "mask")


def _kinds_check(kinds: tuple[str, ...]) -> str:
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"


def _replace_kinds_check(kinds: tuple[str, ...]) -> None:
    checks = sa.inspect(op.get_bind()).get_check_constraints("annotations")
    old = [c["name"] for c in checks  # PostgreSQL reports the IN list as "= ANY (ARRAY[...])"
           if c.get("name") and (c["name"].endswith("_kind") or "'polygon'" in c["sqltext"])]
    with op.batch_alter_table("annotations") as batch:  # SQLite: rebuilt; PostgreSQL: ALTER TABLE
        for name in old:
            batch.drop_constraint(op.f(name), type_="check")
        batch.create_check_constraint(op.f(CONSTRAINT), _kinds_check(kinds))


def upgrade() -> None:
    _replace_kinds_check(NEW_KINDS)


def downgrade() -> None:
    masks = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM annotations WHERE kind = 'mask'")).scalar_one()
    if masks:
        raise MigrationError(
            f"annotations: {masks} painted mask(s) cannot be kept before revision 0005; "
            "delete them first if the downgrade is really wanted (nothing was changed)"
        )
    _replace_kinds_check(OLD_KINDS)
