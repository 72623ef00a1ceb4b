"""Kite's error envelope as the simulator raises it: an ``error_type`` from Kite's
documented list with the HTTP status Kite sends alongside it."""

from __future__ import annotations

from http import HTTPStatus


class KiteError(Exception):
    """Rendered as ``{"status": "error", "message": ..., "data": null, "error_type": ...}``."""

    def __init__(self, error_type: str, message: str, status: int) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status


def token_error(message: str = "Incorrect `api_key` or `access_token`.") -> KiteError:
    return KiteError("TokenException", message, HTTPStatus.FORBIDDEN)


def input_error(message: str) -> KiteError:
    return KiteError("InputException", message, HTTPStatus.BAD_REQUEST)


def order_error(message: str) -> KiteError:
    return KiteError("OrderException", message, HTTPStatus.BAD_REQUEST)


def general_error(message: str, status: int = HTTPStatus.BAD_REQUEST) -> KiteError:
    return KiteError("GeneralException", message, status)
