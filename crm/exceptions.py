"""Why the CRM receiver refused a notification; the API's exception handler maps each."""

from rest_framework import status

from ahoum.errors import DomainError


class SignatureInvalid(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "signature_invalid"
    default_detail = "The webhook signature does not verify."


class PayloadTooLarge(DomainError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"
    default_detail = "The request body is too large."


class BookingMismatch(DomainError):
    code = "booking_mismatch"
    default_detail = (
        "No booking has this booking_id with this user_id and event; nothing was changed."
    )
