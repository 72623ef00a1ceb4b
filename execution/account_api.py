"""The account's deletion, under the auth API's path: a view of execution's, because deleting
stops strategies, erases broker credentials and keeps orders, all above users."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.requests import request_user
from algotrader.api.schema import ERROR_COMPONENT
from algotrader.users.throttles import AuthPerIPThrottle, AuthPerUserThrottle
from execution.exceptions import AccountHasOpenPositions
from execution.services.account import account_delete


class AccountDeleteApi(APIView):
    throttle_classes = [AuthPerIPThrottle, AuthPerUserThrottle]

    class AccountDeleteInput(serializers.Serializer[Any]):
        password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)

    @extend_schema(
        request=AccountDeleteInput,
        responses={
            204: None,
            409: OpenApiResponse(
                response={"$ref": f"#/components/schemas/{ERROR_COMPONENT}"},
                description="A position is open (or an order live): `strategies` lists the strategies holding one.",
                examples=[
                    OpenApiExample(
                        "positions_open",
                        value={
                            "error": {
                                "code": AccountHasOpenPositions.code,
                                "message": AccountHasOpenPositions.message,
                                "fields": {},
                                "strategies": [12],
                            }
                        },
                    )
                ],
            ),
        },
        operation_id="auth_account_delete",
        description="Deletes the account, the password given again (a wrong one is a 400 on password). "
        "Refused with 409 positions_open while a strategy holds a position or an order is live. Otherwise "
        "running strategies stop, broker accounts lose their credentials, the email is replaced and the "
        "user deactivated (every session ends); orders and events are kept, no longer naming the person.",
    )
    def post(self, request: Request) -> Response:
        data = self.AccountDeleteInput(data=request.data)
        data.is_valid(raise_exception=True)
        account_delete(user=request_user(request), **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)
