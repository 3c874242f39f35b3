"""audit log: one contract's events in time order (the console's log page)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # (contract_id, at) replaces the contract_id index: its prefix serves every lookup the
    # old one did, and the page's "newest first within a contract" needs no sort.
    op.create_index("ix_audit_events_contract_at", "audit_events", ["contract_id", "at"])
    op.drop_index("ix_audit_events_contract_id", table_name="audit_events")


def downgrade() -> None:
    op.create_index("ix_audit_events_contract_id", "audit_events", ["contract_id"])
    op.drop_index("ix_audit_events_contract_at", table_name="audit_events")
