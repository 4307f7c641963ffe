"""Messages: a provider's error code may be a word (Africa's Talking's failure reasons,
such as UnsupportedNumberType), longer than 16 characters.

Revision ID: 0005
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.alter_column('error_code', type_=sa.String(length=64), existing_type=sa.String(length=16),
                           existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.alter_column('error_code', type_=sa.String(length=16), existing_type=sa.String(length=64),
                           existing_nullable=True)
