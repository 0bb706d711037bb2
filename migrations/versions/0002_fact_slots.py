"""fact slots: attribute/value/as_of on claims with their normal forms, grounding rejections by reason,
and the judge's claim pairs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 12:05:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attribute', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('value', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('as_of', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('attr_key', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('value_norm', sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column('value_type', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('as_of_norm', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('match', sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f('ix_claims_attr_key'), ['attr_key'], unique=False)

    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rejections', sa.JSON(), nullable=True))

    op.create_table('claim_pairs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=False),
    sa.Column('claim_new', sa.String(length=40), nullable=False),
    sa.Column('claim_old', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('verdict', sa.String(length=20), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('invalid', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['claim_new'], ['claims.id'], name=op.f('fk_claim_pairs_claim_new_claims')),
    sa.ForeignKeyConstraint(['claim_old'], ['claims.id'], name=op.f('fk_claim_pairs_claim_old_claims')),
    sa.ForeignKeyConstraint(['entity_id'], ['entities.id'], name=op.f('fk_claim_pairs_entity_id_entities')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claim_pairs')),
    sa.UniqueConstraint('claim_new', 'claim_old', name='uq_claim_pairs_pair')
    )
    with op.batch_alter_table('claim_pairs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_pairs_entity_id'), ['entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_pairs_claim_new'), ['claim_new'], unique=False)
        batch_op.create_index(batch_op.f('ix_claim_pairs_claim_old'), ['claim_old'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('claim_pairs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_pairs_claim_old'))
        batch_op.drop_index(batch_op.f('ix_claim_pairs_claim_new'))
        batch_op.drop_index(batch_op.f('ix_claim_pairs_entity_id'))
    op.drop_table('claim_pairs')
    with op.batch_alter_table('sources', schema=None) as batch_op:
        batch_op.drop_column('rejections')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claims_attr_key'))
        batch_op.drop_column('match')
        batch_op.drop_column('as_of_norm')
        batch_op.drop_column('value_type')
        batch_op.drop_column('value_norm')
        batch_op.drop_column('attr_key')
        batch_op.drop_column('as_of')
        batch_op.drop_column('value')
        batch_op.drop_column('attribute')
