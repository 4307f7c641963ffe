"""Call-back requests: a missed call to a beep line (or a hang-up before the menu) waiting
to be called back. No number column: the call goes to the reporter's encrypted number.

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'callbacks',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reporter_id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('line', sa.String(length=32), nullable=False),
        sa.Column('reason', sa.String(length=16), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('beeps', sa.Integer(), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=True),
        sa.Column('failure_reason', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_callbacks_reporter_created', 'callbacks', ['reporter_id', 'created_at'])
    op.create_index('ix_callbacks_status_due', 'callbacks', ['status', 'next_attempt_at'])


def downgrade() -> None:
    op.drop_index('ix_callbacks_status_due', table_name='callbacks')
    op.drop_index('ix_callbacks_reporter_created', table_name='callbacks')
    op.drop_table('callbacks')
