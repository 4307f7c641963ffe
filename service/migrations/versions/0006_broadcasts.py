"""Safety broadcasts: subscribers and their groups, broadcasts, their answers; each
delivery is an outbound message with its broadcast (one per recipient) and, when it
waits for a retry, the time it may be tried again.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'groups',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('description', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('name'),
    )
    op.create_table(
        'subscribers',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reporter_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('signup', sa.JSON(), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('place_key', sa.String(length=32), nullable=True),
        sa.Column('place_name', sa.String(length=128), nullable=True),
        sa.Column('admin1_pcode', sa.String(length=16), nullable=True),
        sa.Column('admin2_pcode', sa.String(length=16), nullable=True),
        sa.Column('lat', sa.Float(), nullable=True),
        sa.Column('lon', sa.Float(), nullable=True),
        sa.Column('channel', sa.String(length=32), nullable=True),
        sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('consent_method', sa.String(length=16), nullable=True),
        sa.Column('consent_note', sa.String(length=200), nullable=True),
        sa.Column('source', sa.String(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('reporter_id'),
    )
    op.create_index('ix_subscribers_status', 'subscribers', ['status'])
    op.create_index('ix_subscribers_admin1_pcode', 'subscribers', ['admin1_pcode'])
    op.create_index('ix_subscribers_admin2_pcode', 'subscribers', ['admin2_pcode'])
    op.create_table(
        'subscriber_groups',
        sa.Column('subscriber_id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('subscriber_id', 'group_id'),
    )
    op.create_index('ix_subscriber_groups_group', 'subscriber_groups', ['group_id'])
    op.create_table(
        'broadcasts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('identifier', sa.String(length=64), nullable=False),
        sa.Column('texts', sa.JSON(), nullable=False),
        sa.Column('original_texts', sa.JSON(), nullable=True),
        sa.Column('fallback_language', sa.String(length=8), nullable=True),
        sa.Column('targets', sa.JSON(), nullable=False),
        sa.Column('priority', sa.String(length=8), nullable=False),
        sa.Column('cap_status', sa.String(length=16), nullable=False),
        sa.Column('cap', sa.JSON(), nullable=True),
        sa.Column('question', sa.JSON(), nullable=True),
        sa.Column('replies_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('send_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('fanout_cursor', sa.Integer(), nullable=False),
        sa.Column('fanout_done', sa.Boolean(), nullable=False),
        sa.Column('recipients', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('canceled_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('identifier'),
    )
    op.create_index('ix_broadcasts_state', 'broadcasts', ['state'])
    op.create_table(
        'broadcast_replies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('broadcast_id', sa.Integer(), nullable=False),
        sa.Column('reporter_id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=True),
        sa.Column('answer', sa.String(length=8), nullable=False),
        sa.Column('admin1_pcode', sa.String(length=16), nullable=True),
        sa.Column('admin2_pcode', sa.String(length=16), nullable=True),
        sa.Column('changes', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['broadcast_id'], ['broadcasts.id']),
        sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id']),
        sa.ForeignKeyConstraint(['message_id'], ['messages.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('broadcast_id', 'reporter_id', name='uq_broadcast_replies_recipient'),
    )
    op.create_index('ix_broadcast_replies_broadcast_id', 'broadcast_replies', ['broadcast_id'])
    with op.batch_alter_table('messages') as batch:
        batch.add_column(sa.Column('broadcast_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key('fk_messages_broadcast_id', 'broadcasts', ['broadcast_id'], ['id'])
        batch.create_unique_constraint('uq_messages_broadcast_recipient', ['broadcast_id', 'reporter_id'])
        batch.create_index('ix_messages_broadcast_status', ['broadcast_id', 'status', 'id'])


def downgrade() -> None:
    with op.batch_alter_table('messages') as batch:
        batch.drop_index('ix_messages_broadcast_status')
        batch.drop_constraint('uq_messages_broadcast_recipient', type_='unique')
        batch.drop_constraint('fk_messages_broadcast_id', type_='foreignkey')
        batch.drop_column('next_attempt_at')
        batch.drop_column('broadcast_id')
    op.drop_table('broadcast_replies')
    op.drop_table('broadcasts')
    op.drop_table('subscriber_groups')
    op.drop_table('subscribers')
    op.drop_table('groups')
