"""The decision store's schema: ordered SQL migrations, Postgres 15+ and Aurora PostgreSQL compatible."""
