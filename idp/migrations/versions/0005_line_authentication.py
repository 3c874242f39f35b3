"""line authentication: the contract's registered line IDs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "contract_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=40), nullable=False),
        sa.Column("line_id", sa.String(length=13), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=60), nullable=False),
        sa.Column("notify_consent_at", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"],
            name=op.f("fk_contract_lines_contract_id_contracts"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contract_lines")),
        sa.UniqueConstraint("contract_id", "line_id", name="uq_contract_lines_contract_line"),
    )
    with op.batch_alter_table("contract_lines", schema=None) as batch_op:
        batch_op.create_index("ix_contract_lines_line_id", ["line_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("contract_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_contract_lines_line_id")
    op.drop_table("contract_lines")
