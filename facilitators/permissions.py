from accounts.permissions import IsFacilitator


class IsEventFacilitatorOrStaff(IsFacilitator):
    """Facilitators and staff get in (401/403 otherwise); only the event's owner or staff act."""

    def has_object_permission(self, request, view, obj) -> bool:
        if request.user.is_staff or obj.facilitator_id == request.user.pk:
            return True
        self.message = "This event is run by another facilitator."
        return False
