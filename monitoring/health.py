"""Reachability checks of the parts every process needs: the database and Redis."""

from django.db import connection

from algotrader.redis_client import get_redis


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return bool(cursor.fetchone() == (1,))
    except Exception:
        return False


def redis_ok() -> bool:
    try:
        return bool(get_redis().ping())
    except Exception:
        return False
