"""PostgreSQL access: asyncpg pools at run time, Alembic migrations for the schema."""
