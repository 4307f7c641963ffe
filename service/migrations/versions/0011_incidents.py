"""Incidents: reports of one event grouped, with counts of alerts and distinct sources;
each alert points to its incident.

Revision ID: 0011
Revises: 0010
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'incidents',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('category', sa.String(length=32), nullable=True),
        sa.Column('place_id', sa.Integer(), nullable=True),
        sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('alert_count', sa.Integer(), nullable=False),
        sa.Column('source_count', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('merged_into_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['place_id'], ['places.id']),
        sa.ForeignKeyConstraint(['merged_into_id'], ['incidents.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_incidents_category', 'incidents', ['category'])
    op.create_index('ix_incidents_place_id', 'incidents', ['place_id'])
    op.create_index('ix_incidents_merged_into_id', 'incidents', ['merged_into_id'])
    op.create_index('ix_incidents_status_last_at', 'incidents', ['status', 'last_at'])
    with op.batch_alter_table('alerts') as batch:
        batch.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch.create_foreign_key('fk_alerts_incident_id', 'incidents', ['incident_id'], ['id'])
        batch.create_index('ix_alerts_incident_id', ['incident_id'])


def downgrade() -> None:
    with op.batch_alter_table('alerts') as batch:
        batch.drop_index('ix_alerts_incident_id')
        batch.drop_constraint('fk_alerts_incident_id', type_='foreignkey')
        batch.drop_column('incident_id')
    op.drop_index('ix_incidents_status_last_at', table_name='incidents')
    op.drop_index('ix_incidents_merged_into_id', table_name='incidents')
    op.drop_index('ix_incidents_place_id', table_name='incidents')
    op.drop_index('ix_incidents_category', table_name='incidents')
    op.drop_table('incidents')
