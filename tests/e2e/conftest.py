"""The end-to-end tests run whole cycles offline: a real PostgreSQL (tests/database.py) and moto."""

from tests.database import fixture_database_url, fixture_db, fixture_postgres, fixture_reservations

__all__ = ["fixture_database_url", "fixture_db", "fixture_postgres", "fixture_reservations"]
