"""Messages: why one failed, and when a send was claimed (to recover sends left half-done);
reporters: which message opted them out (its confirmation may still be sent).

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reporters') as batch:
        batch.add_column(sa.Column('opted_out_message_id', sa.Integer(), nullable=True))
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('failure_reason', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('claimed_at')
        batch.drop_column('failure_reason')
    with op.batch_alter_table('reporters') as batch:
        batch.drop_column('opted_out_message_id')
