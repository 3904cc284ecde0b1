"""Provenance and supersede links of policies; the event behind each piece of evidence.

- policies: the tokens and cost of the decision that wrote the current version; ``superseded_by`` and
  ``supersedes`` link a replaced policy and its successor.
- policy_evidence: the event that added each piece, so evidence applied before its policy gets the same history
  row as evidence applied after it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("policy_evidence", sa.Column("event_id", sa.String(128), nullable=True))
    op.add_column("policies", sa.Column("prompt_tokens", sa.Integer(), nullable=True))
    op.add_column("policies", sa.Column("completion_tokens", sa.Integer(), nullable=True))
    op.add_column("policies", sa.Column("cost_usd", sa.Float(), nullable=True))
    op.add_column("policies", sa.Column("superseded_by", sa.String(64), nullable=True))
    op.add_column("policies", sa.Column("supersedes", postgresql.JSONB(), nullable=False, server_default="[]"))
    op.create_index("ix_policies_superseded_by", "policies", ["superseded_by"])


def downgrade() -> None:
    op.drop_index("ix_policies_superseded_by", table_name="policies")
    for column in ("supersedes", "superseded_by", "cost_usd", "completion_tokens", "prompt_tokens"):
        op.drop_column("policies", column)
    op.drop_column("policy_evidence", "event_id")
