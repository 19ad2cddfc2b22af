"""Alembic environment: migrates the connection telmi.migrate hands over, or TELMI_DATABASE_URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from telmi.db import Database
from telmi.models import Base
from telmi.settings import Settings

config = context.config
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_settings() -> None:
    db = Database(Settings.from_env().database_url)
    try:
        async with db.write_engine.begin() as conn:
            await conn.run_sync(run_with)
    finally:
        await db.dispose()


if context.is_offline_mode():
    context.configure(
        url=Settings.from_env().database_url,
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    run_with(shared)
else:
    asyncio.run(run_from_settings())
