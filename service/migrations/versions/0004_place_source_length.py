"""Places: the source of a key place is a page's URL, often longer than 128 characters
(PostgreSQL refused such a place, so its alert could not be saved).

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('places') as batch:
        batch.alter_column('source', type_=sa.String(length=1000), existing_type=sa.String(length=128),
                           existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table('places') as batch:
        batch.alter_column('source', type_=sa.String(length=128), existing_type=sa.String(length=1000),
                           existing_nullable=True)
