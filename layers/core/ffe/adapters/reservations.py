"""Order reservations on PostgreSQL: the headroom the risk gate has spent on orders not yet at the venue.

``account(key)`` opens one transaction holding ``pg_advisory_xact_lock`` on the venue account, so that
"read what is pending -> size -> reserve" (GateRisk) and "check the reservation -> place -> mark it"
(ExecuteOrder) never interleave for one account, across Lambda containers. A reservation counts until the
order is placed (the venue's open orders and positions count it from then on), released, or expired: an
unplaced reservation expires ``ttl_seconds`` after it was made, which is longer than a cycle can run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ffe.adapters.database import DEFAULT_STATEMENT_TIMEOUT_MS, Conninfo, Database
from ffe.domain.portfolio import OrderSide, PendingOrder
from ffe.domain.ports import PLACED, RESERVED, Reservation
from ffe.store.migrate import migrate_offline

_COLUMNS = "client_order_id, asset, bar_time, side, quantity, price, cycle_id, assessment, status"
_LIVE = f"status = '{PLACED}' OR (status = '{RESERVED}' AND expires_at > now())"


class _Book:
    def __init__(self, conn: psycopg.Connection[dict[str, Any]], account: str, ttl_seconds: int) -> None:
        self._conn, self._account, self._ttl = conn, account, ttl_seconds

    def live_for_bar(self, asset: str, bar_time: datetime | None) -> Reservation | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS}, true AS live FROM order_reservations WHERE account = %s AND asset = %s"  # noqa: S608
            f" AND bar_time IS NOT DISTINCT FROM %s AND ({_LIVE})",
            (self._account, asset, bar_time),
        ).fetchone()
        return _reservation(row) if row else None

    def get(self, client_order_id: str) -> Reservation | None:
        row = self._conn.execute(
            f"SELECT {_COLUMNS}, ({_LIVE}) AS live FROM order_reservations"  # noqa: S608
            " WHERE client_order_id = %s AND account = %s",
            (client_order_id, self._account),
        ).fetchone()
        return _reservation(row) if row else None

    def reserved(self) -> list[PendingOrder]:
        rows = self._conn.execute(
            f"SELECT {_COLUMNS}, true AS live FROM order_reservations"  # noqa: S608
            f" WHERE account = %s AND status = '{RESERVED}' AND expires_at > now() ORDER BY created_at",
            (self._account,),
        ).fetchall()
        return [_reservation(r).pending() for r in rows]

    def prices(self, client_order_ids: list[str]) -> dict[str, Decimal]:
        """The price each of these orders was sized at, for those this account reserved (one query)."""
        if not client_order_ids:
            return {}
        rows = self._conn.execute(
            "SELECT client_order_id, price FROM order_reservations WHERE account = %s AND client_order_id = ANY(%s)",
            (self._account, client_order_ids),
        ).fetchall()
        return {r["client_order_id"]: Decimal(r["price"]) for r in rows}

    def reserve(self, reservation: Reservation) -> None:
        self._conn.execute(
            "INSERT INTO order_reservations (client_order_id, account, asset, bar_time, side, quantity, price,"
            " cycle_id, status, assessment, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'RESERVED', %s, now() + make_interval(secs => %s))",
            (
                reservation.client_order_id,
                self._account,
                reservation.asset,
                reservation.bar_time,
                reservation.side.value,
                reservation.quantity,
                reservation.price,
                reservation.cycle_id,
                Jsonb(reservation.assessment),
                self._ttl,
            ),
        )

    def mark(self, client_order_id: str, status: str, note: str) -> None:
        self._conn.execute(
            "UPDATE order_reservations SET status = %s, note = %s, updated_at = now() WHERE client_order_id = %s",
            (status, note[:500], client_order_id),
        )

    def release_expired(self) -> None:
        """Expired, never placed: no longer live, so the bar may be decided again and the index stays clean."""
        self._conn.execute(
            "UPDATE order_reservations SET status = 'RELEASED', note = 'expired before it was placed',"
            " updated_at = now() WHERE account = %s AND status = 'RESERVED' AND expires_at <= now()",
            (self._account,),
        )


class PostgresReservations:
    """One connection per container (``ffe.adapters.database``); the schema is migrated on every new one,
    offline only (``migrate_offline``: in AWS MigrateDatabase alone migrates)."""

    def __init__(
        self,
        conninfo: Conninfo,
        ttl_seconds: int,
        lock_timeout_ms: int = 10_000,
        statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    ) -> None:
        if ttl_seconds <= 0:
            raise ValueError(f"reservation TTL must be positive, got {ttl_seconds}")
        self._ttl = ttl_seconds
        # Waiting longer than the lock timeout for the account lock is a TransientError (the state machine
        # retries), so a holder that hangs never holds every other gate of the account past its own Lambda timeout.
        self.database = Database(
            conninfo,
            row_factory=dict_row,
            name="order reservations",
            statement_timeout_ms=statement_timeout_ms,
            lock_timeout_ms=lock_timeout_ms,
            on_connect=migrate_offline,
        )

    @contextmanager
    def account(self, account: str) -> Iterator[_Book]:
        """The account's reservations, locked against every other gate or order of the same account."""
        with self.database.transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"ffe-account:{account}",))
            book = _Book(conn, account, self._ttl)
            book.release_expired()
            yield book

    def close(self) -> None:
        self.database.close()


def _reservation(row: dict[str, Any]) -> Reservation:
    assessment = row["assessment"]
    return Reservation(
        client_order_id=row["client_order_id"],
        asset=row["asset"],
        bar_time=row["bar_time"],
        side=OrderSide(row["side"]),
        quantity=Decimal(row["quantity"]),
        price=Decimal(row["price"]),
        cycle_id=row["cycle_id"],
        assessment=assessment if isinstance(assessment, dict) else json.loads(assessment),
        status=row["status"],
        live=bool(row["live"]),
    )
