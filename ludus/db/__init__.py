"""SQL engines, table definitions and Alembic migrations (SQLite, PostgreSQL, SQL Server)."""
