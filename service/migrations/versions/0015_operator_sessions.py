"""An operator's session generation: every console login carries it, and a change of password
or roles, or a disable, raises it so that the operator's existing sessions stop at their next
request (service/console/auth.py). Existing operators start at 0.

Revision ID: 0015
Revises: 0014
"""

from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('operators') as batch:
        batch.add_column(sa.Column('session_generation', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('operators') as batch:
        batch.drop_column('session_generation')
