"""An index of the history rows that record an import, for the twin check's "not imported" test.

The twin check (policy_store/twins.py) leaves imported policies out of every new policy's nearest neighbours: for
each neighbour it walks, one look-up of the policy's history rows with action 'imported'. With an index on
policy_id alone, that look-up fetched every history row of the neighbour to read its action: 71 % of the
statement's buffer reads in a plan of 300 probes, and the statement the largest share of the store's time in
PostgreSQL (docs/benchmarks.md, finding 15). Imports are few, so this partial index is small and the look-up
usually finds it empty.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_policy_history_imported", "policy_history", ["policy_id"],
                    postgresql_where=sa.text("action = 'imported'"))


def downgrade() -> None:
    op.drop_index("ix_policy_history_imported", table_name="policy_history")
