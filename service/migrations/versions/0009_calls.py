"""The voice line: calls (the keypad dialogue's state per call), their steps (each
webhook stored before it is processed, with the answer given) and the callers'
recordings (fetched from the provider, kept encrypted). No number column.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'calls',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('call_sid', sa.String(length=64), nullable=False),
        sa.Column('reporter_id', sa.Integer(), nullable=True),
        sa.Column('line', sa.String(length=32), nullable=True),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('callback_id', sa.Integer(), nullable=True),
        sa.Column('language', sa.String(length=8), nullable=True),
        sa.Column('step', sa.String(length=40), nullable=True),
        sa.Column('turn', sa.Integer(), nullable=False),
        sa.Column('state', sa.JSON(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('alert_id', sa.Integer(), nullable=True),
        sa.Column('draft_key', sa.String(length=96), nullable=True),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['reporter_id'], ['reporters.id']),
        sa.ForeignKeyConstraint(['callback_id'], ['callbacks.id']),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'call_sid', name='uq_calls_provider_sid'),
    )
    op.create_index('ix_calls_status_updated', 'calls', ['status', 'updated_at'])
    op.create_index('ix_calls_reporter_id', 'calls', ['reporter_id'])
    op.create_index('ix_calls_alert_id', 'calls', ['alert_id'])
    op.create_table(
        'call_steps',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('event', sa.JSON(), nullable=True),
        sa.Column('response', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('call_id', 'key', name='uq_call_steps_key'),
    )
    op.create_table(
        'recordings',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('provider', sa.String(length=32), nullable=False),
        sa.Column('recording_sid', sa.String(length=64), nullable=False),
        sa.Column('call_id', sa.Integer(), nullable=True),
        sa.Column('alert_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('provider_url', sa.Text(), nullable=True),
        sa.Column('seconds', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('path', sa.String(length=200), nullable=True),
        sa.Column('content_type', sa.String(length=32), nullable=True),
        sa.Column('size', sa.Integer(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('failure_reason', sa.String(length=200), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('stored_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('provider_deleted_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['call_id'], ['calls.id']),
        sa.ForeignKeyConstraint(['alert_id'], ['alerts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('provider', 'recording_sid', name='uq_recordings_provider_sid'),
    )
    op.create_index('ix_recordings_call_id', 'recordings', ['call_id'])
    op.create_index('ix_recordings_alert_id', 'recordings', ['alert_id'])


def downgrade() -> None:
    op.drop_index('ix_recordings_alert_id', table_name='recordings')
    op.drop_index('ix_recordings_call_id', table_name='recordings')
    op.drop_table('recordings')
    op.drop_table('call_steps')
    op.drop_index('ix_calls_alert_id', table_name='calls')
    op.drop_index('ix_calls_reporter_id', table_name='calls')
    op.drop_index('ix_calls_status_updated', table_name='calls')
    op.drop_table('calls')
