"""mfa factors

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22

Enrolled factors (TOTP secrets sealed), used TOTP steps (the replay guard is the primary
key), recovery codes (SHA-256) and remembered browsers.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mfa_factors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("secret_enc", sa.LargeBinary(), nullable=True),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("confirmed_at", sa.Integer(), nullable=True),
        sa.Column("last_used_at", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_mfa_factors_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_factors")),
    )
    with op.batch_alter_table("mfa_factors", schema=None) as batch_op:
        batch_op.create_index("ix_mfa_factors_user", ["user_id"], unique=False)

    op.create_table(
        "mfa_recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.Integer(), nullable=True),
        sa.Column("voided_at", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_mfa_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_recovery_codes")),
        sa.UniqueConstraint("code_hash", name="uq_mfa_recovery_codes_code_hash"),
    )
    with op.batch_alter_table("mfa_recovery_codes", schema=None) as batch_op:
        batch_op.create_index("ix_mfa_recovery_codes_user", ["user_id"], unique=False)

    op.create_table(
        "mfa_remembered_browsers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_mfa_remembered_browsers_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mfa_remembered_browsers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_mfa_remembered_browsers_token_hash")),
    )
    with op.batch_alter_table("mfa_remembered_browsers", schema=None) as batch_op:
        batch_op.create_index("ix_mfa_remembered_browsers_user", ["user_id"], unique=False)

    op.create_table(
        "mfa_totp_steps",
        sa.Column("factor_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("used_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["factor_id"],
            ["mfa_factors.id"],
            name=op.f("fk_mfa_totp_steps_factor_id_mfa_factors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("factor_id", "step", name=op.f("pk_mfa_totp_steps")),
    )


def downgrade() -> None:
    op.drop_table("mfa_totp_steps")
    with op.batch_alter_table("mfa_remembered_browsers", schema=None) as batch_op:
        batch_op.drop_index("ix_mfa_remembered_browsers_user")

    op.drop_table("mfa_remembered_browsers")
    with op.batch_alter_table("mfa_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_mfa_recovery_codes_user")

    op.drop_table("mfa_recovery_codes")
    with op.batch_alter_table("mfa_factors", schema=None) as batch_op:
        batch_op.drop_index("ix_mfa_factors_user")

    op.drop_table("mfa_factors")
