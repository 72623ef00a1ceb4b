"""Who may read the API's schema and docs: anyone where ``API_DOCS_PUBLIC`` (development's
default), staff only otherwise (production's), so a production server does not hand its map out."""

from typing import Any

from django.conf import settings
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class ApiDocsPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        if settings.API_DOCS_PUBLIC:
            return True
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
