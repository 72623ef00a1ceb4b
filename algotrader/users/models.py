"""The user: email is the login, stored lower-cased and unique regardless of case."""

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> "User":
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> "User":
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(max_length=254, unique=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email


USER_AGENT_MAX = 256


class RefreshTokenRecord(models.Model):
    """What rotation and revocation need of one issued refresh token, and nothing usable: its
    jti and a SHA-256 of it, never the token. A family is one login's chain of rotations; a
    token presented again after it was rotated revokes its whole family (OAuth's reuse rule)."""

    jti = models.CharField(max_length=64, unique=True)
    token_sha256 = models.CharField(max_length=64)
    family = models.UUIDField(db_index=True)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # Rotated away or logged out: never valid again, and presenting it again is reuse.
    used_at = models.DateTimeField(null=True, blank=True)
    # The family was revoked (reuse detected, logout, a password change or reset, a session ended).
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Where the login or refresh that issued it came from, for the user's list of sessions.
    user_agent = models.CharField(max_length=USER_AGENT_MAX, blank=True, default="")
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["expires_at"], name="refreshtoken_expiry")]

    def __str__(self) -> str:
        return f"refresh {self.jti[:8]}… of user {self.user_id}"
