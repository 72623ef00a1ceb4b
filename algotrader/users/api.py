"""The auth API: register, login, refresh, logout, me; the password's change and reset, and the
user's sessions. Thin views over services. (Deleting the account is execution's: it stops
strategies and keeps orders, which sit above users.)"""

import ipaddress
import uuid
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import Token

from algotrader.api.pagination import BoundedLimitOffsetPagination, paginated
from algotrader.api.requests import request_user
from algotrader.users import selectors, services
from algotrader.users.models import RefreshTokenRecord, User
from algotrader.users.throttles import (
    AuthPerAccountThrottle,
    AuthPerIPThrottle,
    AuthPerUserThrottle,
    AuthTokenPerIPThrottle,
)

FAMILY_CLAIM = services.FAMILY_CLAIM


def _client(request: Request) -> services.Client:
    """The caller's user agent and address (as the throttles see it, behind the trusted
    proxies), recorded with the refresh token it gets."""
    address = BaseThrottle().get_ident(request)
    try:
        ip_address: str | None = str(ipaddress.ip_address(address))
    except ValueError:
        ip_address = None
    return services.Client(user_agent=request.META.get("HTTP_USER_AGENT", ""), ip_address=ip_address)


def request_session(request: Request) -> uuid.UUID | None:
    """The login (refresh-token family) the caller's access token was issued in, if it names one."""
    family = request.auth.get(FAMILY_CLAIM) if isinstance(request.auth, Token) else None
    try:
        return uuid.UUID(str(family)) if family else None
    except ValueError:
        return None


class UserOutput(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "email", "date_joined"]


class TokenPairOutput(serializers.Serializer[Any]):
    access = serializers.CharField()
    refresh = serializers.CharField()


class RegisteredOutput(serializers.Serializer[Any]):
    """The same whether the email was new or had an account: log in next."""

    email = serializers.EmailField()


class CredentialsInput(serializers.Serializer[Any]):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthPerIPThrottle, AuthPerAccountThrottle]

    @extend_schema(request=CredentialsInput, responses={202: RegisteredOutput}, operation_id="auth_register")
    def post(self, request: Request) -> Response:
        data = CredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        email = services.user_register(**data.validated_data)
        return Response(RegisteredOutput({"email": email}).data, status=status.HTTP_202_ACCEPTED)


class LoginApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthPerIPThrottle, AuthPerAccountThrottle]

    @extend_schema(request=CredentialsInput, responses={200: TokenPairOutput}, operation_id="auth_login")
    def post(self, request: Request) -> Response:
        data = CredentialsInput(data=request.data)
        data.is_valid(raise_exception=True)
        # axes records its verdict on the Django request, which its middleware reads.
        pair = services.user_login(request=request._request, client=_client(request), **data.validated_data)
        return Response(TokenPairOutput(pair).data)


class RefreshInput(serializers.Serializer[Any]):
    refresh = serializers.CharField(max_length=2048)


class RefreshApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthTokenPerIPThrottle]

    @extend_schema(request=RefreshInput, responses={200: TokenPairOutput}, operation_id="auth_refresh")
    def post(self, request: Request) -> Response:
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        pair = services.token_refresh(client=_client(request), **data.validated_data)
        return Response(TokenPairOutput(pair).data)


class LogoutApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthTokenPerIPThrottle]

    @extend_schema(request=RefreshInput, responses={204: None}, operation_id="auth_logout")
    def post(self, request: Request) -> Response:
        data = RefreshInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.token_logout(**data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={200: UserOutput}, operation_id="auth_me")
    def get(self, request: Request) -> Response:
        return Response(UserOutput(request_user(request)).data)


def _password_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(max_length=128, trim_whitespace=False, write_only=True, **kwargs)


class PasswordChangeApi(APIView):
    throttle_classes = [AuthPerIPThrottle, AuthPerUserThrottle]

    class PasswordChangeInput(serializers.Serializer[Any]):
        current_password = _password_field()
        new_password = _password_field(help_text="Checked by the password validators (length, common, similarity).")

    @extend_schema(
        request=PasswordChangeInput,
        responses={204: None},
        operation_id="auth_password_change",
        description="Every other login of the account ends (their refresh tokens are revoked, their "
        "WebSockets closed); the login of the access token used here stays. A wrong current password "
        "or a weak new one is a 400 on that field.",
    )
    def post(self, request: Request) -> Response:
        data = self.PasswordChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.user_password_change(
            user=request_user(request), current_session=request_session(request), **data.validated_data
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordResetRequestedOutput(serializers.Serializer[Any]):
    """The same whether or not the email has an account: the link, if any, is in its mailbox."""

    email = serializers.EmailField()


class PasswordResetApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthPerIPThrottle, AuthPerAccountThrottle]

    class PasswordResetInput(serializers.Serializer[Any]):
        email = serializers.EmailField(max_length=254)

    @extend_schema(
        request=PasswordResetInput,
        responses={202: PasswordResetRequestedOutput},
        operation_id="auth_password_reset",
        description="Mails a reset link (PASSWORD_RESET_URL?uid=...&token=...) to the account of this "
        "email, if it has one. The answer is the same 202 either way: nothing tells which emails have accounts.",
    )
    def post(self, request: Request) -> Response:
        data = self.PasswordResetInput(data=request.data)
        data.is_valid(raise_exception=True)
        email = services.password_reset_request(**data.validated_data)
        return Response(PasswordResetRequestedOutput({"email": email}).data, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [AuthTokenPerIPThrottle]

    class PasswordResetConfirmInput(serializers.Serializer[Any]):
        uid = serializers.CharField(max_length=64, help_text="The reset link's uid.")
        token = serializers.CharField(max_length=128, help_text="The reset link's token.")
        new_password = _password_field()

    @extend_schema(
        request=PasswordResetConfirmInput,
        responses={204: None},
        operation_id="auth_password_reset_confirm",
        description="Sets the new password and ends every login of the account. A link works once: "
        "used, expired or made up, it is a 400 on token; a weak password a 400 on new_password.",
    )
    def post(self, request: Request) -> Response:
        data = self.PasswordResetConfirmInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_confirm(**data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class SessionOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField(source="family", help_text="The session's id, to end it with.")
    user_agent = serializers.CharField(help_text="The device's user agent at the last login or refresh.")
    ip_address = serializers.IPAddressField(allow_null=True, help_text="Its address then, if known.")
    started_at = serializers.DateTimeField(help_text="The login.")
    last_used_at = serializers.DateTimeField(source="created_at", help_text="The last login or refresh.")
    expires_at = serializers.DateTimeField(help_text="When it ends unless refreshed.")
    current = serializers.SerializerMethodField(help_text="The session of the access token of this request.")

    def get_current(self, record: RefreshTokenRecord) -> bool:
        return bool(record.family == self.context.get("current"))


class SessionListApi(APIView):
    @extend_schema(
        **paginated(SessionOutput, name="SessionPage"),
        operation_id="auth_sessions_list",
        description="The logins whose refresh token is still usable, most recently used first.",
    )
    def get(self, request: Request) -> Response:
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.session_list(user=request_user(request)), request, view=self)
        output = SessionOutput(page, many=True, context={"current": request_session(request)})
        return paginator.get_paginated_response(output.data)


class SessionDetailApi(APIView):
    @extend_schema(
        responses={204: None},
        operation_id="auth_sessions_revoke",
        description="Ends the session: its refresh token is revoked and its WebSockets close (its "
        "access token lives out its few minutes). Another user's session, or one ended, is a 404.",
    )
    def delete(self, request: Request, session_id: uuid.UUID) -> Response:
        services.session_revoke(user=request_user(request), session_id=session_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
