"""Role permissions shared by every app's views."""

from rest_framework.permissions import BasePermission


class IsFacilitator(BasePermission):
    """Signed-in facilitators (and staff, who act on their behalf)."""

    message = "Only facilitators may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.is_facilitator or user.is_staff))


class IsStaff(BasePermission):
    message = "Only staff may do this."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
