from django.urls import path

from algotrader.users import api

urlpatterns = [
    path("register/", api.RegisterApi.as_view(), name="auth-register"),
    path("login/", api.LoginApi.as_view(), name="auth-login"),
    path("refresh/", api.RefreshApi.as_view(), name="auth-refresh"),
    path("logout/", api.LogoutApi.as_view(), name="auth-logout"),
    path("me/", api.MeApi.as_view(), name="auth-me"),
]
