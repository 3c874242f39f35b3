"""step-up chain: keep-enrolment policy, development SMS outbox

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

``contracts.two_step_keep_on_reset``: a contract policy, off by default, under which a
password reset keeps the 2-step enrolment (only an admin resets it). ``sms_outbox``:
SMS codes "sent" without a gateway (development), shown at /dev/outbox.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("two_step_keep_on_reset", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "sms_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("to", sa.String(length=20), nullable=False),
        sa.Column("text", sa.String(length=500), nullable=False),
        sa.Column("sender", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sms_outbox")),
    )


def downgrade() -> None:
    op.drop_table("sms_outbox")
    with op.batch_alter_table("contracts", schema=None) as batch_op:
        batch_op.drop_column("two_step_keep_on_reset")
