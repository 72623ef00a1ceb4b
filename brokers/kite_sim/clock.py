"""Kite's timestamps: exchange time (IST) formatted ``YYYY-MM-DD HH:MM:SS``, the
19-character form the official client turns into datetimes."""

from datetime import datetime, timedelta, timezone

IST = timezone(timedelta(hours=5, minutes=30), "IST")


def kite_time(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, IST).strftime("%Y-%m-%d %H:%M:%S")
