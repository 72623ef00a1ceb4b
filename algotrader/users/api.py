"""The auth API: register, login, refresh, logout, me. Thin views over services."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.requests import request_user
from algotrader.users import services
from algotrader.users.models import User
from algotrader.users.throttles import AuthPerAccountThrottle, AuthPerIPThrottle, AuthTokenPerIPThrottle


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
        pair = services.user_login(request=request._request, **data.validated_data)
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
        pair = services.token_refresh(**data.validated_data)
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
