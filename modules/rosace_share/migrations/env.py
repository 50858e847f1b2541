"""Alembic environment of the share archive: runs on the connection handed over by ``db.upgrade``."""

from alembic import context
from sqlalchemy import create_engine

from rosace_share.db import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # the alembic command line: sqlalchemy.url from alembic.ini / -x url=
        url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
        if not url:
            raise SystemExit("no database: give -x url=<SQLAlchemy URL> or sqlalchemy.url in alembic.ini")
        with create_engine(url).begin() as conn:
            _configure(conn)
        return
    _configure(connection)


def _configure(connection) -> None:
    # Batch mode lets later migrations alter columns on SQLite (table copy).
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run()
