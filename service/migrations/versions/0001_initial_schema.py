"""Initial schema: reporters, conversations, messages, places, alerts (service/models.py).

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('places',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('admin1_pcode', sa.String(length=16), nullable=True),
    sa.Column('admin1_name', sa.String(length=128), nullable=True),
    sa.Column('admin2_pcode', sa.String(length=16), nullable=True),
    sa.Column('admin2_name', sa.String(length=128), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('source', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_index('ix_places_admin2_pcode', 'places', ['admin2_pcode'])

    op.create_table('reporters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('phone_encrypted', sa.Text(), nullable=True),
    sa.Column('phone_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('detected_language', sa.String(length=8), nullable=True),
    sa.Column('opted_out', sa.Boolean(), nullable=False),
    sa.Column('opted_out_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('conversations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reporter_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_conversations_reporter_id', 'conversations', ['reporter_id'])

    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reference', sa.String(length=16), nullable=True),
    sa.Column('draft_key', sa.String(length=96), nullable=True),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('category', sa.String(length=32), nullable=True),
    sa.Column('place_id', sa.Integer(), nullable=True),
    sa.Column('place_text', sa.String(length=160), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('occurred_text', sa.String(length=160), nullable=True),
    sa.Column('people_affected', sa.Integer(), nullable=True),
    sa.Column('people_many', sa.Boolean(), nullable=False),
    sa.Column('perpetrator', sa.String(length=160), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], ),
    sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('draft_key'),
    sa.UniqueConstraint('reference')
    )
    op.create_index('ix_alerts_category', 'alerts', ['category'])
    op.create_index('ix_alerts_created_at', 'alerts', ['created_at'])
    op.create_index('ix_alerts_reporter_id', 'alerts', ['reporter_id'])
    op.create_index('ix_alerts_status', 'alerts', ['status'])

    op.create_table('messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('reporter_id', sa.Integer(), nullable=True),
    sa.Column('conversation_id', sa.Integer(), nullable=True),
    sa.Column('reply_to_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=16), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ),
    sa.ForeignKeyConstraint(['reply_to_id'], ['messages.id'], ),
    sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('provider', 'provider_id', name='uq_messages_provider_id')
    )
    op.create_index('ix_messages_conversation_id', 'messages', ['conversation_id'])
    op.create_index('ix_messages_pending', 'messages', ['direction', 'status', 'reporter_id', 'id'])
    op.create_index('ix_messages_reporter_id', 'messages', ['reporter_id'])


def downgrade() -> None:
    op.drop_index('ix_messages_reporter_id', table_name='messages')
    op.drop_index('ix_messages_pending', table_name='messages')
    op.drop_index('ix_messages_conversation_id', table_name='messages')

    op.drop_table('messages')
    op.drop_index('ix_alerts_status', table_name='alerts')
    op.drop_index('ix_alerts_reporter_id', table_name='alerts')
    op.drop_index('ix_alerts_created_at', table_name='alerts')
    op.drop_index('ix_alerts_category', table_name='alerts')

    op.drop_table('alerts')
    op.drop_index('ix_conversations_reporter_id', table_name='conversations')

    op.drop_table('conversations')
    op.drop_table('reporters')
    op.drop_index('ix_places_admin2_pcode', table_name='places')

    op.drop_table('places')
