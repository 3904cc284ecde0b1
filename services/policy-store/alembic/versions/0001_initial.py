"""Feedback, policies, policy history and evidence, processed events.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256)),
        sa.Column("conversation_id", sa.String(256)),
        sa.Column("message_id", sa.String(256)),
        sa.Column("rating", sa.String(16)),
        sa.Column("comment", sa.Text()),
        sa.Column("context", postgresql.JSONB()),
        sa.Column("submitted_at", TZ),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("policy_id", sa.String(64)),
        sa.Column("reason", sa.String(64)),
        sa.Column("duplicate_of", sa.String(64)),
        sa.Column("decided_at", TZ),
        sa.Column("decision", postgresql.JSONB()),
        sa.Column("recorded_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_feedback_user_id", "feedback", ["user_id"])
    op.create_index("ix_feedback_status", "feedback", ["status"])
    op.create_index("ix_feedback_policy_id", "feedback", ["policy_id"])

    op.create_table(
        "policies",
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("priority", sa.String(16), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("correct_mapping", sa.Text()),
        sa.Column("missing_knowledge", sa.Text(), nullable=False, server_default=""),
        sa.Column("examples", postgresql.JSONB(), nullable=False, server_default="[]"),
        sa.Column("rationale", sa.Text(), nullable=False, server_default=""),
        sa.Column("source_feedback_ids", postgresql.JSONB(), nullable=False, server_default="[]"),
        sa.Column("support_count", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("schema_objects", postgresql.JSONB(), nullable=False, server_default="[]"),
        sa.Column("generator_provider", sa.String(64), nullable=False),
        sa.Column("generator_model", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("valid_from", TZ),
        sa.Column("valid_to", TZ),
    )
    op.create_index("ix_policies_status", "policies", ["status"])
    op.create_index("ix_policies_category", "policies", ["category"])
    op.create_index("ix_policies_priority", "policies", ["priority"])
    op.create_index("ix_policies_created_order", "policies", ["created_at", "policy_id"])

    op.create_table(
        "policy_history",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("policy_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer()),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("at", TZ, nullable=False),
        sa.Column("event_id", sa.String(128)),
        sa.Column("snapshot", postgresql.JSONB()),
    )
    op.create_index("ix_policy_history_policy_id", "policy_history", ["policy_id"])

    op.create_table(
        "policy_evidence",
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("feedback_id", sa.String(64), primary_key=True),
        sa.Column("added_at", TZ, nullable=False),
    )

    op.create_table(
        "processed_events",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("processed_at", TZ, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("processed_events")
    op.drop_table("policy_evidence")
    op.drop_index("ix_policy_history_policy_id", table_name="policy_history")
    op.drop_table("policy_history")
    for name in ("ix_policies_created_order", "ix_policies_priority", "ix_policies_category", "ix_policies_status"):
        op.drop_index(name, table_name="policies")
    op.drop_table("policies")
    for name in ("ix_feedback_policy_id", "ix_feedback_status", "ix_feedback_user_id"):
        op.drop_index(name, table_name="feedback")
    op.drop_table("feedback")
