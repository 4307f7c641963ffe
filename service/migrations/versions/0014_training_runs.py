"""Retraining from the console: one row per run (service/retraining.py).

Revision ID: 0014
Revises: 0013
"""

from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'training_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('step', sa.String(length=64), nullable=True),
        sa.Column('progress', sa.Integer(), nullable=False),
        sa.Column('operator_id', sa.Integer(), nullable=True),
        sa.Column('fingerprint', sa.String(length=32), nullable=True),
        sa.Column('model_name', sa.String(length=128), nullable=True),
        sa.Column('serving_before', sa.String(length=128), nullable=True),
        sa.Column('margin', sa.Float(), nullable=False),
        sa.Column('scores', sa.JSON(), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['operator_id'], ['operators.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_training_runs_status', 'training_runs', ['status'])
    op.create_index('ix_training_runs_operator_id', 'training_runs', ['operator_id'])


def downgrade() -> None:
    op.drop_index('ix_training_runs_operator_id', table_name='training_runs')
    op.drop_index('ix_training_runs_status', table_name='training_runs')
    op.drop_table('training_runs')
