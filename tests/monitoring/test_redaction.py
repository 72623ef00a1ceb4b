"""No secret survives the logging filter, whatever shape it is logged in and whichever
format (text or JSON) writes the line."""

import io
import logging

import pytest

from monitoring.logging import MASK, JsonFormatter, RedactSecretsFilter, TextFormatter

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJlLXZhbHVl"


def filtered(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, msg, args or None, None)
    for name, value in extra.items():
        setattr(record, name, value)
    RedactSecretsFilter().filter(record)
    return record


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        (f"Authorization: Bearer {JWT}", JWT),
        ("header token kitekey123:acc3ssTok3nValue", "acc3ssTok3nValue"),
        ("posting api_secret=s3cr3tValue&api_key=k3y", "s3cr3tValue"),
        ('{"access_token": "abcd1234efgh", "status": "ok"}', "abcd1234efgh"),
        (f"refresh {JWT} failed", JWT),
        ("password=hunter2hunter2", "hunter2hunter2"),
    ],
)
def test_secrets_in_messages_are_masked(message, secret):
    record = filtered(message)

    assert secret not in record.getMessage()
    assert MASK in record.getMessage()


def test_percent_arguments_are_masked():
    record = filtered("login with %s", {"password": "hunter2hunter2"})

    assert "hunter2hunter2" not in record.getMessage()


def test_secret_keys_in_extra_are_masked_recursively():
    record = filtered("order", payload={"request": {"api_secret": "zzz", "symbol": "INFY"}}, access_token="t0k")

    assert vars(record)["payload"] == {"request": {"api_secret": MASK, "symbol": "INFY"}}
    assert vars(record)["access_token"] == MASK


def test_ordinary_text_is_left_alone():
    record = filtered("BUY 10 INFY at 1500.50 for strategy 12")

    assert record.getMessage() == "BUY 10 INFY at 1500.50 for strategy 12"


@pytest.mark.parametrize(
    ("message", "secret"),
    [
        ("AUTHORIZATION: BEARER abcdefgh12345678", "abcdefgh12345678"),
        ("Token kitekey123:acc3ssTok3nValue", "acc3ssTok3nValue"),
        ("API_KEY=k3yk3yk3y", "k3yk3yk3y"),
        ("x-Checksum: 0123456789abcdef", "0123456789abcdef"),
        ("PassWd=hunter2hunter2", "hunter2hunter2"),
    ],
)
def test_secret_words_are_recognised_in_any_case(message, secret):
    """The quick look for a secret-naming word, before the patterns run, ignores case
    as the patterns do."""
    record = filtered(message)

    assert secret not in record.getMessage()


@pytest.mark.parametrize("formatter", [TextFormatter, JsonFormatter], ids=["text", "json"])
def test_no_secret_reaches_a_line_in_either_format(formatter):
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter())
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("tests.redaction.formats")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(f"Authorization: Bearer {JWT}")
        logger.warning("POST /session/token api_secret=%s", "s3cr3tValue123")
        logger.warning("session", extra={"access_token": "acc3ssTok3nValue", "note": "password=hunter2hunter2"})
        try:
            raise RuntimeError("Kite refused token kitekey123:tracebackTok3n")
        except RuntimeError:
            logger.exception("login failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True

    output = buffer.getvalue()
    for secret in (JWT, "s3cr3tValue123", "acc3ssTok3nValue", "hunter2hunter2", "tracebackTok3n"):
        assert secret not in output, output
    assert output.count(MASK) >= 5 and "RuntimeError" in output
