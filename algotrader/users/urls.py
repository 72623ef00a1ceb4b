from django.urls import path

from algotrader.users import api

urlpatterns = [
    path("register/", api.RegisterApi.as_view(), name="auth-register"),
    path("login/", api.LoginApi.as_view(), name="auth-login"),
    path("refresh/", api.RefreshApi.as_view(), name="auth-refresh"),
    path("logout/", api.LogoutApi.as_view(), name="auth-logout"),
    path("me/", api.MeApi.as_view(), name="auth-me"),
    path("password/change/", api.PasswordChangeApi.as_view(), name="auth-password-change"),
    path("password/reset/", api.PasswordResetApi.as_view(), name="auth-password-reset"),
    path("password/reset/confirm/", api.PasswordResetConfirmApi.as_view(), name="auth-password-reset-confirm"),
    path("sessions/", api.SessionListApi.as_view(), name="auth-sessions"),
    path("sessions/<uuid:session_id>/", api.SessionDetailApi.as_view(), name="auth-session"),
]
