"""Re-analysis runs: which feedback each run asked to decide again, what came of it, and which run a feedback shows.

- reanalysis_requests: one row per run and feedback; the request's columns and the decision's columns are filled
  by their own events, in whichever order they are applied.
- feedback.reanalysis_run_id: the run whose decision the row shows (null for the feedback's first decision).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    # The primary key leads with run_id, so it also serves the per-run progress query.
    op.create_table(
        "reanalysis_requests",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("feedback_id", sa.String(64), primary_key=True),
        sa.Column("requested_by", sa.String(256)),
        sa.Column("requested_at", TZ),
        sa.Column("reason", sa.Text()),
        sa.Column("event_id", sa.String(128)),
        sa.Column("decided_at", TZ),
        sa.Column("outcome", sa.String(16)),
        sa.Column("policy_id", sa.String(64)),
        sa.Column("decision_event_id", sa.String(128)),
    )
    op.add_column("feedback", sa.Column("reanalysis_run_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("feedback", "reanalysis_run_id")
    op.drop_table("reanalysis_requests")
