from typing import Any

from django.contrib import admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from algotrader.users.models import RefreshTokenRecord, User
from algotrader.users.services import token_families_revoke


class UserCreationForm(auth_forms.BaseUserCreationForm[User]):
    class Meta:
        model = User
        fields = ("email",)


class UserChangeForm(auth_forms.UserChangeForm[User]):
    class Meta:
        model = User
        fields: Any = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin[User]):  # type: ignore[type-var]  # email-login user, not AbstractUser
    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ["email"]
    list_display = ["email", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email"]
    show_full_result_count = False  # one count per page, not two, on a table of every user
    readonly_fields = ["date_joined", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)


@admin.register(RefreshTokenRecord)
class RefreshTokenRecordAdmin(admin.ModelAdmin[RefreshTokenRecord]):
    """Logins by refresh-token family: read-only (the row holds no token), revocable."""

    list_display = ["jti", "user", "family", "created_at", "expires_at", "used_at", "revoked_at", "user_agent"]
    list_filter = ["revoked_at", "used_at"]
    search_fields = ["user__email", "family"]
    list_select_related = ["user"]
    readonly_fields = [
        "jti",
        "user",
        "family",
        "created_at",
        "expires_at",
        "used_at",
        "revoked_at",
        "user_agent",
        "ip_address",
    ]
    actions = ["revoke_families"]
    show_full_result_count = False

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected logins (their whole token families)")
    def revoke_families(self, request: Any, queryset: Any) -> None:
        count = token_families_revoke(families=set(queryset.values_list("family", flat=True)))
        self.message_user(request, f"{count} refresh tokens revoked.")
