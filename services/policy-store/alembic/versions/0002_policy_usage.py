"""Policy usage (which policies were in the prompt of which answer) and the feedback indexes attribution reads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "policy_usage",
        sa.Column("policy_id", sa.String(64), primary_key=True),
        sa.Column("conversation_id", sa.String(256), primary_key=True),
        sa.Column("message_id", sa.String(256), primary_key=True),
        sa.Column("question", sa.Text()),
        sa.Column("used_at", TZ, nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
    )
    # Feedback finds the policies used for its answer, and usage the feedback already on its answer.
    op.create_index("ix_policy_usage_message", "policy_usage", ["conversation_id", "message_id"])
    op.create_index("ix_feedback_message", "feedback", ["conversation_id", "message_id"])
    op.create_index("ix_feedback_submitted_at", "feedback", ["submitted_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_submitted_at", table_name="feedback")
    op.drop_index("ix_feedback_message", table_name="feedback")
    op.drop_index("ix_policy_usage_message", table_name="policy_usage")
    op.drop_table("policy_usage")
