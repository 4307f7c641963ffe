"""Indexes on the two foreign keys that point at messages without one (a reply's
message, an answer's message), so that deleting messages (a future purge of old
broadcast deliveries) does not scan the table once per row deleted, as it did in
scripts/bench_broadcast.py (minutes for 100,000 deliveries on PostgreSQL).

Revision ID: 0007
Revises: 0006
"""

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_messages_reply_to_id', 'messages', ['reply_to_id'])
    op.create_index('ix_broadcast_replies_message_id', 'broadcast_replies', ['message_id'])


def downgrade() -> None:
    op.drop_index('ix_broadcast_replies_message_id', table_name='broadcast_replies')
    op.drop_index('ix_messages_reply_to_id', table_name='messages')
