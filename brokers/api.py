"""The broker accounts API: submit keys, list, detail, delete, and the Kite login (login URL,
then the request token; or the one-tap login link and the page Kite's redirect lands on).
Credentials are write-only: no response ever carries one. Also the instrument search. Thin views
over ``brokers.services``, ``brokers.kite_login`` and ``brokers.selectors``."""

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from algotrader.api.requests import request_user
from algotrader.exceptions import ApplicationError
from algotrader.users.models import User
from brokers import kite_login, selectors, services
from brokers.exceptions import KiteLoginStateInvalid
from brokers.models import BrokerAccount

logger = logging.getLogger(__name__)

# Kite's keys and tokens are printable ASCII without spaces; anything else (CRLF, non-Latin-1)
# could never authenticate and would break the HTTP header it is sent in.
_CREDENTIAL_PATTERN = r"^[\x21-\x7e]*$"
_CREDENTIAL_MESSAGE = "Only printable ASCII characters without spaces."
INSTRUMENT_SEARCH_DEFAULT = 20
INSTRUMENT_SEARCH_MAX = 50


def _secret_field(max_length: int) -> serializers.RegexField:
    return serializers.RegexField(
        _CREDENTIAL_PATTERN,
        max_length=max_length,
        required=False,
        allow_blank=True,
        write_only=True,
        trim_whitespace=True,
        error_messages={"invalid": _CREDENTIAL_MESSAGE},
    )


class BrokerAccountOutput(serializers.ModelSerializer[BrokerAccount]):
    api_key_set = serializers.SerializerMethodField()
    api_secret_set = serializers.SerializerMethodField()
    can_enter = serializers.SerializerMethodField(help_text="Whether new entries (BUYs) can be placed now.")

    class Meta:
        model = BrokerAccount
        fields = [
            "id",
            "kind",
            "label",
            "status",
            "broker_user_id",
            "token_expires_at",
            "last_validated_at",
            "api_key_set",
            "api_secret_set",
            "can_enter",
            "protective_stops",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_api_key_set(self, account: BrokerAccount) -> bool:
        return bool(account.api_key)

    def get_api_secret_set(self, account: BrokerAccount) -> bool:
        return bool(account.api_secret)

    def get_can_enter(self, account: BrokerAccount) -> bool:
        return selectors.broker_account_can_enter(account)


class BrokerAccountListApi(APIView):
    class BrokerAccountSubmitInput(serializers.Serializer[Any]):
        kind = serializers.ChoiceField(choices=BrokerAccount.Kind.choices)
        # Serializer (a Field) has a `label` attribute of its own; DRF's metaclass takes this one as a field.
        label = serializers.CharField(max_length=64)  # type: ignore[assignment]
        api_key = _secret_field(128)
        api_secret = _secret_field(128)
        access_token = _secret_field(512)
        protective_stops = serializers.BooleanField(
            default=True, help_text="Rest a protective stop order at the broker for every held position."
        )

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            given = [name for name in ("api_key", "api_secret", "access_token") if attrs.get(name)]
            if attrs["kind"] == BrokerAccount.Kind.PAPER and given:
                raise serializers.ValidationError(dict.fromkeys(given, "A paper account takes no credentials."))
            if attrs["kind"] == BrokerAccount.Kind.KITE:
                missing = [name for name in ("api_key", "api_secret") if not attrs.get(name)]
                if missing:
                    raise serializers.ValidationError(
                        dict.fromkeys(missing, "Required for a Kite account (from developers.kite.trade).")
                    )
            return attrs

    @extend_schema(responses={200: BrokerAccountOutput(many=True)}, operation_id="broker_accounts_list")
    def get(self, request: Request) -> Response:
        accounts = selectors.broker_account_list(user=request_user(request))
        return Response(BrokerAccountOutput(accounts, many=True).data)

    @extend_schema(
        request=BrokerAccountSubmitInput,
        responses={201: BrokerAccountOutput},
        operation_id="broker_accounts_submit",
        description="Checks the credentials with the broker at once: an account the broker refuses is not "
        "stored (400 broker_auth_failed). A Kite account without an access token is stored as "
        "login_required: get its login-url, then post the request_token to its session.",
    )
    def post(self, request: Request) -> Response:
        data = self.BrokerAccountSubmitInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = services.broker_account_submit(owner=request_user(request), **data.validated_data)
        return Response(BrokerAccountOutput(account).data, status=status.HTTP_201_CREATED)


class BrokerAccountDetailApi(APIView):
    @extend_schema(responses={200: BrokerAccountOutput}, operation_id="broker_accounts_detail")
    def get(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request_user(request), account_id=account_id)
        return Response(BrokerAccountOutput(account).data)

    @extend_schema(responses={204: None}, operation_id="broker_accounts_delete")
    def delete(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request_user(request), account_id=account_id)
        services.broker_account_delete(account=account)
        return Response(status=status.HTTP_204_NO_CONTENT)


class BrokerAccountLoginUrlApi(APIView):
    class BrokerAccountLoginUrlOutput(serializers.Serializer[Any]):
        login_url = serializers.URLField()

    @extend_schema(responses={200: BrokerAccountLoginUrlOutput}, operation_id="broker_accounts_login_url")
    def get(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request_user(request), account_id=account_id)
        login_url = services.broker_account_login_url(account=account)
        return Response(self.BrokerAccountLoginUrlOutput({"login_url": login_url}).data)


class BrokerAccountKiteLoginApi(APIView):
    class BrokerAccountKiteLoginOutput(serializers.Serializer[Any]):
        login_url = serializers.URLField(help_text="Open in a browser: Kite's login page, carrying a one-time state.")
        expires_at = serializers.DateTimeField(help_text="The link completes no login after this.")

    @extend_schema(
        responses={200: BrokerAccountKiteLoginOutput},
        operation_id="broker_accounts_kite_login",
        description="The daily login in one tap: open login_url in a browser. Kite sends the browser back "
        "to /kite/callback/ (the app's registered redirect URL), which finishes the login itself and shows "
        "a page saying so; the account is then active (B1) until 06:00 Asia/Kolkata. The link works once, "
        "until expires_at. 400 login_not_supported for a paper account, 409 for a disabled one.",
    )
    def get(self, request: Request, account_id: int) -> Response:
        account = selectors.broker_account_get(user=request_user(request), account_id=account_id)
        login = kite_login.kite_login_start(account=account)
        return Response(self.BrokerAccountKiteLoginOutput(login).data)


@method_decorator(never_cache, name="dispatch")
class KiteLoginCallbackView(View):
    """Where Kite sends the browser after its login page (the app's registered redirect URL):
    a plain GET from a browser, with no token of ours, so the signed state it carries back is
    what says whose login it is. Answers a small HTML page, 200 done or 400 with the reason."""

    class KiteLoginCallbackInput(serializers.Serializer[Any]):
        state = serializers.CharField(max_length=512)
        status = serializers.CharField(max_length=32, required=False, default="")
        request_token = serializers.RegexField(_CREDENTIAL_PATTERN, max_length=128, required=False, default="")

    def get(self, request: HttpRequest) -> HttpResponse:
        data = self.KiteLoginCallbackInput(data=request.GET.dict())
        if not data.is_valid():
            return self._page(request, error=KiteLoginStateInvalid())
        browser_user = request.user if isinstance(request.user, User) else None
        try:
            account = kite_login.kite_login_complete(browser_user=browser_user, **data.validated_data)
        except ApplicationError as error:
            return self._page(request, error=error)
        return self._page(request, account=account)

    def _page(
        self, request: HttpRequest, *, account: BrokerAccount | None = None, error: ApplicationError | None = None
    ) -> HttpResponse:
        if error is not None:
            logger.info("kite login refused", extra={"code": error.code})
        context = {"account": account, "error": error}
        status_code = 200 if error is None else (error.status if error.status >= 500 else 400)
        response = render(request, "brokers/kite_login.html", context, status=status_code)
        # The address holds the request token: it goes nowhere else, not even as a referrer.
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


class BrokerAccountSessionApi(APIView):
    class BrokerAccountSessionInput(serializers.Serializer[Any]):
        request_token = serializers.RegexField(
            _CREDENTIAL_PATTERN, max_length=128, write_only=True, error_messages={"invalid": _CREDENTIAL_MESSAGE}
        )

    @extend_schema(
        request=BrokerAccountSessionInput,
        responses={200: BrokerAccountOutput},
        operation_id="broker_accounts_session",
        description="After the Kite login redirect: exchanges its request_token for the day's access token.",
    )
    def post(self, request: Request, account_id: int) -> Response:
        data = self.BrokerAccountSessionInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = selectors.broker_account_get(user=request_user(request), account_id=account_id)
        account = services.broker_account_create_session(account=account, **data.validated_data)
        return Response(BrokerAccountOutput(account).data)


class KitePostbackApi(APIView):
    """Kite's HTTP postback of an order update (the app's postback URL at developers.kite.trade).
    Kite calls it without our credentials: the payload's checksum, made with the account's API
    secret, is what authenticates it. Any 2xx stops Kite's retries, so 200 means received."""

    permission_classes = [AllowAny]
    authentication_classes = []  # no session, so no CSRF check either: Kite is not a browser

    class KitePostbackInput(serializers.Serializer[Any]):
        # Only what finding the account and checking the checksum needs; the rest of the
        # order (Kite's order-book shape) is read by the engine.
        order_id = serializers.CharField(max_length=64)
        order_timestamp = serializers.CharField(max_length=32)
        checksum = serializers.RegexField(r"^[0-9a-fA-F]{64}$", max_length=64)
        user_id = serializers.CharField(max_length=64)
        status = serializers.CharField(max_length=64)
        transaction_type = serializers.ChoiceField(choices=["BUY", "SELL"])

    class KitePostbackOutput(serializers.Serializer[Any]):
        received = serializers.BooleanField()

    @extend_schema(
        request=KitePostbackInput,
        responses={200: KitePostbackOutput},
        operation_id="brokers_kite_postback",
        auth=[],
        description="Kite's order-update postback, verified by its checksum "
        "(SHA-256 of order_id + order_timestamp + the account's API secret): 403 checksum_invalid if "
        "it does not match (nothing changes), 400 for a malformed body. A final update (COMPLETE, "
        "REJECTED, CANCELLED) is applied to its order once, however often or late it comes.",
    )
    def post(self, request: Request) -> Response:
        data = self.KitePostbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.kite_postback_receive(payload={**request.data, **data.validated_data})
        return Response(self.KitePostbackOutput({"received": True}).data)


class InstrumentSearchApi(APIView):
    class InstrumentSearchInput(serializers.Serializer[Any]):
        q = serializers.CharField(
            min_length=1,
            max_length=32,
            help_text="The start of a symbol or name, or something like one (INF, infosys).",
        )
        exchange = serializers.ChoiceField(choices=["NSE", "BSE"], required=False, help_text="Only this exchange's.")
        limit = serializers.IntegerField(
            min_value=1,
            max_value=INSTRUMENT_SEARCH_MAX,
            default=INSTRUMENT_SEARCH_DEFAULT,
            help_text="At most this many.",
        )

    class InstrumentOutput(serializers.Serializer[Any]):
        exchange = serializers.CharField(source="instrument.exchange")
        symbol = serializers.CharField(source="instrument.symbol", help_text="Kite's tradingsymbol.")
        name = serializers.CharField(source="instrument.name")
        segment = serializers.CharField(source="instrument.segment")
        instrument_type = serializers.CharField(source="instrument.instrument_type")
        instrument_token = serializers.IntegerField(source="instrument.instrument_token")
        tick_size = serializers.DecimalField(source="instrument.tick_size", max_digits=12, decimal_places=4)
        lot_size = serializers.IntegerField(source="instrument.lot_size")
        last_price = serializers.DecimalField(
            max_digits=14,
            decimal_places=4,
            allow_null=True,
            help_text="The last tick, else the broker's instrument dump's price; null if neither is known.",
        )
        last_price_at = serializers.DateTimeField(
            allow_null=True, help_text="When last_price was traded (a tick) or listed (the dump's refresh)."
        )

    @extend_schema(
        parameters=[InstrumentSearchInput],
        responses={200: InstrumentOutput(many=True)},
        operation_id="instruments_search",
        description="Symbol search over the broker's instrument list (refreshed each trading morning): "
        "symbols and names starting with q come first (an exact symbol, then symbol prefixes, then name "
        "prefixes), then those only resembling it (trigram similarity), closest first.",
    )
    def get(self, request: Request) -> Response:
        data = self.InstrumentSearchInput(data=request.query_params)
        data.is_valid(raise_exception=True)
        matches = selectors.instrument_search(
            query=data.validated_data["q"],
            exchange=data.validated_data.get("exchange"),
            limit=data.validated_data["limit"],
        )
        return Response(self.InstrumentOutput(matches, many=True).data)
