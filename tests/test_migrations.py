"""The schema comes from Alembic and matches the models exactly, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from service.db import make_engine
from service.models import Base


def test_the_migrated_schema_has_no_difference_from_the_models(database_url):
    # database_url is migrated with `alembic upgrade head` by the fixture
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
            assert context.get_current_revision() is not None
            assert set(inspect(connection).get_table_names()) >= {t.name for t in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


def test_db_upgrade_command_creates_the_schema_on_a_new_database(tmp_path):
    from service import cli

    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert cli.main(["db", "upgrade", "--database-url", url]) == 0
    engine = make_engine(url)
    try:
        assert "messages" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
