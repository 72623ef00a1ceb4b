"""``EncryptedTextField``: text encrypted at rest with Fernet keys of its own
(``settings.FIELD_ENCRYPTION_KEYS``: the first encrypts, all decrypt), stored as
the Fernet token in a text column. Independent of ``SECRET_KEY``; never pickle.
Serialized (dumpdata, fixtures) it leaves only as ``fernet:<token>``, never as the text."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured, ValidationError
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.expressions import Expression
from django.db.models.lookups import Exact, IsNull, Lookup

SERIALIZED_PREFIX = "fernet:"


class DecryptionError(Exception):
    """A stored value that no key of FIELD_ENCRYPTION_KEYS decrypts: a missing or wrong key,
    never something to hand on as if the ciphertext were the value."""


@lru_cache(maxsize=8)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    # Cached per key set: building Fernet objects per row would cost a key parse each time,
    # and a changed setting (rotation, tests) simply yields a new entry.
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: set at least one Fernet key")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as error:
            # The key itself never goes into the message.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from error
    return MultiFernet(fernets)


def field_fernet() -> MultiFernet:
    return _multi_fernet(tuple(key.strip() for key in settings.FIELD_ENCRYPTION_KEYS if key.strip()))


def encrypt_text(value: str) -> str:
    return field_fernet().encrypt(value.encode()).decode()


def decrypt_text(token: str, *, what: str = "a stored value") -> str:
    try:
        return field_fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise DecryptionError(
            f"{what} cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS "
            "(was the key that encrypted it removed before rotate_field_keys ran?)"
        ) from error


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Plain ``str`` in Python, a Fernet token in the database. ``""`` and ``None`` are stored
    as they are, so "not set" stays queryable; every other value is encrypted with a fresh
    IV, which is why equality lookups on a value are refused: they could never match."""

    description = "Text encrypted with FIELD_ENCRYPTION_KEYS"

    def from_db_value(self, value: str | None, expression: Expression, connection: BaseDatabaseWrapper) -> str | None:
        if value is None or value == "":
            return value
        return decrypt_text(value, what=f"{self.model._meta.label}.{self.name}")

    def value_to_string(self, obj: models.Model) -> str:
        # What Django's serializers (dumpdata, fixtures) write: the ciphertext, marked so that
        # loading it back (``to_python``) restores the text instead of encrypting the token.
        value = self.value_from_object(obj)
        if value is None or value == "":
            return value  # type: ignore[no-any-return]
        return SERIALIZED_PREFIX + encrypt_text(str(value))

    def to_python(self, value: Any) -> Any:
        value = super().to_python(value)
        if isinstance(value, str) and value.startswith(SERIALIZED_PREFIX):
            try:
                return decrypt_text(value.removeprefix(SERIALIZED_PREFIX), what=f"serialized {self.name}")
            except DecryptionError as error:
                raise ValidationError(str(error), code="undecryptable") from error
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_text(str(value))

    def get_lookup(self, lookup_name: str) -> type[Lookup[Any]] | None:
        # Tokens are randomised, so only "is it set" can be asked of the database.
        if lookup_name == Exact.lookup_name:
            return _EmptyOnlyExact
        if lookup_name == IsNull.lookup_name:
            return super().get_lookup(lookup_name)
        return None  # Django then raises "Unsupported lookup"


class _EmptyOnlyExact(Exact[Any]):
    def get_prep_lookup(self) -> Any:
        if self.rhs not in ("", None):
            raise FieldError("An encrypted field can only be compared with '' (not set)")
        return super().get_prep_lookup()
