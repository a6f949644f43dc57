"""Why a booking operation was refused; the API's exception handler maps each to a status."""

from rest_framework import status

from ahoum.errors import DomainError


class EventNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "event_not_found"
    field = "event_id"
    default_detail = "No event with this id."


class EventNotBookable(DomainError):
    code = "event_not_bookable"
    default_detail = "This event can no longer be booked."


class OwnEvent(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "own_event"
    default_detail = "Facilitators cannot book their own events."


class SoldOut(DomainError):
    """Not enough seats for the booking (all or nothing); the answer carries `seats_left`."""

    code = "sold_out"
    default_detail = "No seats are left for this event."


class TooManySeats(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"
    field = "seats"
    default_detail = "This event takes fewer seats per booking."


class TooManyAttendees(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"
    field = "attendees"
    default_detail = "More attendees than seats."


class AttendeeNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    field = "attendee_id"
    default_detail = "This booking has no attendee with this id."


class AlreadyBooked(DomainError):
    code = "already_booked"
    default_detail = "You already have a booking for this event."


class NotCancellable(DomainError):
    code = "not_cancellable"
    default_detail = "This booking cannot be cancelled."


class NotPayable(DomainError):
    code = "not_payable"
    default_detail = "This booking cannot be paid or refunded in its current state."


class CancellationCutoffPassed(DomainError):
    code = "cancellation_cutoff_passed"
    default_detail = "It is too late to cancel this paid booking."


class PaymentsNotConfigured(DomainError):
    status_code = 503
    code = "payments_not_configured"
    default_detail = (
        "Online payment is not configured on this server; the booking stays unpaid until "
        "staff mark it paid."
    )


class PaymentProviderUnavailable(DomainError):
    status_code = 503
    code = "payment_provider_unavailable"
    default_detail = "The payment provider could not be reached. No seat is held; try again."
    headers = {"Retry-After": "5"}


class PaymentProviderError(DomainError):
    status_code = 502
    code = "payment_provider_error"
    default_detail = "The payment provider refused the request. No seat is held."


class SeatsAvailable(DomainError):
    """The seats asked for can be booked: no waitlist for them (the answer has `seats_left`)."""

    code = "seats_available"
    default_detail = "Seats are available: book them instead of joining the waitlist."


class AlreadyWaiting(DomainError):
    """On the list already; `entry` is that entry (the view puts it in the answer)."""

    code = "already_waiting"
    default_detail = "You are already on the waitlist of this event."

    def __init__(self, detail: str | None = None, *, entry=None) -> None:
        super().__init__(detail)
        self.entry = entry


class WaitlistClosed(DomainError):
    code = "waitlist_closed"
    default_detail = "The facilitator has closed this event's waitlist."


class NotWaiting(DomainError):
    code = "not_waiting"
    default_detail = "This waitlist entry has ended."


class OfferNotOpen(DomainError):
    code = "offer_not_open"
    default_detail = "There is no open offer of seats on this waitlist entry (it may have expired)."
