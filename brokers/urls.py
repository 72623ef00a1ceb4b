from django.urls import path

from brokers import api

urlpatterns = [
    path("", api.BrokerAccountListApi.as_view(), name="broker-accounts"),
    path("<int:account_id>/", api.BrokerAccountDetailApi.as_view(), name="broker-account-detail"),
    path("<int:account_id>/login-url/", api.BrokerAccountLoginUrlApi.as_view(), name="broker-account-login-url"),
    path("<int:account_id>/kite-login/", api.BrokerAccountKiteLoginApi.as_view(), name="broker-account-kite-login"),
    path("<int:account_id>/session/", api.BrokerAccountSessionApi.as_view(), name="broker-account-session"),
]
