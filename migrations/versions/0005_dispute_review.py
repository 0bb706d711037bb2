"""dispute review: a person's decision on a contradiction (keep one side, both valid, dismiss), by whom,
when and why

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 03:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('contradictions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('decision', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('kept_claim', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('resolved_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('review_commit', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('contradictions', schema=None) as batch_op:
        batch_op.drop_column('review_commit')
        batch_op.drop_column('resolved_at')
        batch_op.drop_column('resolved_by')
        batch_op.drop_column('note')
        batch_op.drop_column('kept_claim')
        batch_op.drop_column('decision')
