from rest_framework.permissions import SAFE_METHODS, IsAuthenticatedOrReadOnly


class EventPermission(IsAuthenticatedOrReadOnly):
    """Anyone reads; facilitators (and staff) create; only the owner or staff change or delete."""

    message = "Only the event's facilitator or staff may change it."

    def has_permission(self, request, view) -> bool:
        if request.method in SAFE_METHODS:
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False  # → 401
        if view.action == "create" and not (user.is_facilitator or user.is_staff):
            self.message = "Only facilitators may create events."
            return False
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return request.user.is_staff or obj.facilitator_id == request.user.pk
