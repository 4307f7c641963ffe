"""A focal point's home village on the reporter (a gazetteer key), set by an operator.

Revision ID: 0012
Revises: 0011
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('reporters') as batch:
        batch.add_column(sa.Column('home_place_key', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('reporters') as batch:
        batch.drop_column('home_place_key')
