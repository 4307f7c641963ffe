"""Statistics on when an alert reached us, coalesce(submitted_at, created_at), for the metrics
and the dashboard (service/metrics.py, service/console/dashboard.py), which select their
windows on that expression. PostgreSQL only (extended statistics on an expression, PG 14+);
nothing on SQLite.

Migration-only: no index and nothing in service/models.py (an expression index would be a
difference between the models and the schema for tests/test_migrations.py; statistics objects
are not compared). Without them the planner guesses 0.5 % of alerts for a four-week window (208
rows instead of 29,000 at 100,000 alerts) and runs the response times' join as 29,000 index
probes of alert_events (300 ms) instead of one hash join (120 ms). ANALYZE fills them.

Revision ID: 0013
Revises: 0012
"""

from alembic import op


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE STATISTICS st_alerts_received ON (coalesce(submitted_at, created_at)) FROM alerts")
        op.execute("ANALYZE alerts")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP STATISTICS IF EXISTS st_alerts_received")
