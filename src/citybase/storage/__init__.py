"""Storage: engines (SQLite default, PostgreSQL/PostGIS), sessions, migrations, bulk loading."""
