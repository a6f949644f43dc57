"""Creating, changing and deleting events.

Cancelling one, with its bookings and refunds: `bookings/services/event_cancellation.py`.
"""

from rest_framework import status

from ahoum.db import service_transaction
from ahoum.errors import DomainError
from bookings import tasks as booking_tasks
from bookings.models import Booking
from events.models import Event


class CapacityBelowSeatsTaken(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "capacity_below_seats_taken"
    field = "capacity"


class EventHasBookings(DomainError):
    code = "event_has_bookings"
    default_detail = (
        "This event has bookings and cannot be deleted. Cancel it instead with "
        "POST /facilitator/cancel/{id}: its bookings are refunded or cancelled and the "
        "history is kept."
    )


class NotAFacilitator(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "not_a_facilitator"
    field = "facilitator_id"
    default_detail = "Events can only be run by a user with the facilitator role."


class NotYourFacilitator(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    default_detail = "Only staff may choose another facilitator for an event."


def create_event(*, by, facilitator=None, **fields) -> Event:
    """Create a scheduled event run by `facilitator` (default: `by`); only staff pick another."""
    facilitator = facilitator or by
    if facilitator != by and not by.is_staff:
        raise NotYourFacilitator("Only staff may create events for another facilitator.")
    if not facilitator.is_facilitator:
        raise NotAFacilitator()
    event = Event(facilitator=facilitator, **fields)
    event.full_clean()
    event.save()
    return event


def check_capacity(*, event: Event, capacity: int) -> None:
    """Refuse a capacity below the seats already taken (confirmed or held)."""
    taken = event.seats_taken()
    if capacity < taken:
        raise CapacityBelowSeatsTaken(f"{taken} seats are already taken; capacity cannot be lower.")


def update_event(*, event: Event, by, **changes) -> Event:
    """Change an event's details; capacity never drops below the seats already taken."""
    if "facilitator" in changes and not by.is_staff:
        raise NotYourFacilitator("Only staff may move an event to another facilitator.")
    with service_transaction():
        # Same lock as booking: no seat can be taken between the count and the write.
        event = Event.objects.select_for_update().get(pk=event.pk)
        if "capacity" in changes:
            check_capacity(event=event, capacity=changes["capacity"])
        raised = changes.get("capacity", event.capacity) > event.capacity
        for name, value in changes.items():
            setattr(event, name, value)
        event.full_clean()
        event.save()
        if raised and event.seats_waiting:
            booking_tasks.offer_freed_seats.enqueue(event.pk)  # new seats for the waitlist
    return event


def delete_event(*, event: Event) -> None:
    """Delete an event that never had a booking; bookings (and their history) are never deleted."""
    with service_transaction():
        event = Event.objects.select_for_update().get(pk=event.pk)
        if Booking.objects.filter(event=event).exists():
            raise EventHasBookings(
                EventHasBookings.default_detail.replace("{id}", str(event.pk)), event_id=event.pk
            )
        event.delete()
