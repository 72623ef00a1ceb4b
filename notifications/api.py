"""The notifications API: the user's feed (filtered, paginated, newest first), marking one or
all read, and the phones (FCM tokens) pushes go to. Thin views over services and selectors."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.pagination import BoundedLimitOffsetPagination, paginated
from algotrader.api.requests import request_user
from notifications import selectors, services
from notifications.models import Device, Notification

MAX_ID = 2**63 - 1


class NotificationOutput(serializers.ModelSerializer[Notification]):
    class Meta:
        model = Notification
        fields = ["id", "kind", "title", "body", "strategy", "order", "created_at", "read_at"]
        read_only_fields = fields


class NotificationFilter(serializers.Serializer[Any]):
    unread = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="true: only unread; false: only read; absent: all."
    )
    kind = serializers.ChoiceField(
        choices=Notification.Kind.choices, required=False, help_text="Only notifications of this kind."
    )


class ReadAllInput(serializers.Serializer[Any]):
    up_to_id = serializers.IntegerField(
        min_value=1,
        max_value=MAX_ID,
        required=False,
        allow_null=True,
        help_text="Mark only notifications up to this id (the newest shown), so one arriving meanwhile stays unread.",
    )


class ReadAllOutput(serializers.Serializer[Any]):
    marked = serializers.IntegerField(help_text="How many notifications were unread and are now read.")


class TokenField(serializers.RegexField):
    """A string only: DRF would turn the number 12 into the token "12"."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return str(super().to_internal_value(data))


class DeviceInput(serializers.Serializer[Any]):
    token = TokenField(
        r"^[A-Za-z0-9_:.\-]+$",
        max_length=512,
        help_text="The phone's FCM registration token.",
        error_messages={"invalid": "Not an FCM registration token."},
    )


class DeviceOutput(serializers.ModelSerializer[Device]):
    class Meta:
        model = Device
        fields = ["id", "created_at", "updated_at"]
        read_only_fields = fields


_PAGE = paginated(NotificationOutput, name="NotificationPage")


class NotificationListApi(APIView):
    @extend_schema(
        responses=_PAGE["responses"],
        parameters=[NotificationFilter, *_PAGE["parameters"]],
        operation_id="notifications_list",
    )
    def get(self, request: Request) -> Response:
        # A plain dict: from a QueryDict, DRF reads an absent boolean as false.
        filters = NotificationFilter(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        notifications = selectors.notification_list(user=request_user(request), **filters.validated_data)
        paginator = BoundedLimitOffsetPagination()
        page = paginator.paginate_queryset(notifications, request, view=self)
        return paginator.get_paginated_response(NotificationOutput(page, many=True).data)


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses={200: NotificationOutput}, operation_id="notifications_read")
    def post(self, request: Request, notification_id: int) -> Response:
        notification = services.notification_mark_read(user=request_user(request), notification_id=notification_id)
        return Response(NotificationOutput(notification).data)


class NotificationReadAllApi(APIView):
    @extend_schema(request=ReadAllInput, responses={200: ReadAllOutput}, operation_id="notifications_read_all")
    def post(self, request: Request) -> Response:
        data = ReadAllInput(data=request.data)
        data.is_valid(raise_exception=True)
        marked = services.notifications_mark_all_read(user=request_user(request), **data.validated_data)
        return Response(ReadAllOutput({"marked": marked}).data)


class DeviceListApi(APIView):
    @extend_schema(
        request=DeviceInput,
        responses={201: DeviceOutput, 200: DeviceOutput},
        operation_id="devices_register",
        description="Register the phone's FCM token: 201 when new, 200 when already registered "
        "(a token registered by another user moves to this one).",
    )
    def post(self, request: Request) -> Response:
        data = DeviceInput(data=request.data)
        data.is_valid(raise_exception=True)
        device, created = services.device_register(user=request_user(request), token=data.validated_data["token"])
        return Response(DeviceOutput(device).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class DeviceDetailApi(APIView):
    @extend_schema(responses={204: None}, operation_id="devices_delete")
    def delete(self, request: Request, device_id: int) -> Response:
        services.device_remove(user=request_user(request), device_id=device_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
