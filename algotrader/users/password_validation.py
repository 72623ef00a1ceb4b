"""Passwords that pass length and the common-password list yet guess in a handful of tries:
all whitespace, or one character repeated."""

from typing import Any

from django.core.exceptions import ValidationError


class NotTrivialPasswordValidator:
    """Refuse a password made of whitespace only, or of one character repeated."""

    def validate(self, password: str, user: Any = None) -> None:
        if not password.strip():
            raise ValidationError("This password is only whitespace.", code="password_whitespace")
        if len(set(password)) == 1:
            raise ValidationError("This password repeats a single character.", code="password_one_character")

    def get_help_text(self) -> str:
        return "Your password can't be only whitespace or one character repeated."
