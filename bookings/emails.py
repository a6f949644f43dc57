"""What a booking email says: which emails a change owes, their text and HTML, the invite.

Building only: nothing here writes to the database or sends. Queueing and sending live in
`bookings.notifications`. The calendar invite (RFC 5545, built with `icalendar`) is the same
for the confirmation email and `GET /bookings/{id}/calendar.ics`.
"""

from datetime import UTC, datetime, timedelta, tzinfo
from email.mime.text import MIMEText
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import dateformat
from icalendar import Calendar, vCalAddress
from icalendar import Event as CalendarEvent

from bookings.models import (
    Booking,
    BookingAudit,
    BookingEmail,
    BookingStatus,
    EmailKind,
    EmailRecipient,
    PaymentStatus,
)
from events.models import LONGEST_EVENT, Event, attendee_timezones

PRODUCT_NAME = "Ahoum"
PRODID = "-//Ahoum//Bookings//EN"

# The attendee's participation, by the event's STATUS in the invite.
PARTICIPATION = {"CONFIRMED": "ACCEPTED", "TENTATIVE": "TENTATIVE", "CANCELLED": "DECLINED"}

# An invite carries the zone's rules from a year before the event to a year after it.
VTIMEZONE_MARGIN = timedelta(days=366)
# The moments whose conversion to any zone (offsets stay within a day) and whose VTIMEZONE
# margin stay inside the years 1 to 9999 that Python's datetime can hold.
_SHOWABLE_FROM = datetime.min.replace(tzinfo=UTC) + VTIMEZONE_MARGIN + timedelta(days=2)
_SHOWABLE_UNTIL = datetime.max.replace(tzinfo=UTC) - VTIMEZONE_MARGIN - timedelta(days=2)

SUBJECTS = {
    EmailKind.CONFIRMED: "Your booking for {title} is confirmed",
    EmailKind.CANCELLED: "Your booking for {title} is cancelled",
    EmailKind.REFUNDED: "Your refund for {title} has been issued",
    EmailKind.EVENT_CANCELLED: "{title} has been cancelled",
    EmailKind.HOLD_EXPIRED: "Your held seat for {title} was released",
    EmailKind.NEW_REGISTRATION: "New registration for {title}",
}


def emails_for_change(audit: BookingAudit) -> list[tuple[str, str]]:
    """The (recipient kind, email kind) pairs a booking transition owes; often none."""
    if audit.to_status == BookingStatus.CONFIRMED and audit.from_status != BookingStatus.CONFIRMED:
        # Free at creation (booking.created), payment received (booking.paid), or confirmed.
        return [
            (EmailRecipient.ATTENDEE, EmailKind.CONFIRMED),
            (EmailRecipient.FACILITATOR, EmailKind.NEW_REGISTRATION),
        ]
    if audit.change == "booking.event_cancelled":
        return [(EmailRecipient.ATTENDEE, EmailKind.EVENT_CANCELLED)]
    if audit.change == "booking.refunded":
        return [(EmailRecipient.ATTENDEE, EmailKind.REFUNDED)]
    if audit.change == "booking.cancelled":
        return [(EmailRecipient.ATTENDEE, EmailKind.CANCELLED)]
    if audit.change == "booking.expired" and audit.to_payment_status == PaymentStatus.UNPAID:
        return [(EmailRecipient.ATTENDEE, EmailKind.HOLD_EXPIRED)]
    # booking.paid without a seat (a refund follows and is emailed), holds renewed, updates.
    return []


def build_message(email: BookingEmail) -> EmailMultiAlternatives:
    """The email for one `BookingEmail` row, from the booking as it is now and its transition."""
    booking = Booking.objects.select_related("user", "event", "event__facilitator").get(
        pk=email.booking_id
    )
    audit = BookingAudit.objects.get(booking=booking, version=email.audit_version)
    event = booking.event
    context = _context(booking, audit, email)
    template = f"bookings/email/{email.kind}"
    subject = SUBJECTS[email.kind].format(title=event.title)
    message = EmailMultiAlternatives(
        subject=" ".join(f"{PRODUCT_NAME}: {subject}".split()),  # no newline from a title
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        headers={
            # The same on every attempt: a receiver can drop a copy of a resent message.
            "Message-ID": f"<booking-email-{email.pk}@{_public_host()}>",
            "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation auto-replies
        },
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")

    invite = _invite_for_email(booking, audit, email)
    if invite is not None:
        message.attach(invite)
    return message


def calendar_invite(booking: Booking) -> bytes:
    """The booking's invite as it stands: a REQUEST while it holds a seat, else a CANCEL.

    SEQUENCE and DTSTAMP come from its latest transition, so right after a confirmation this
    is the same file the confirmation email carried.
    """
    audit = BookingAudit.objects.filter(booking=booking).order_by("-version").first()
    if booking.status == BookingStatus.CONFIRMED:
        method, status = "REQUEST", "CONFIRMED"
    elif booking.status == BookingStatus.PENDING:
        method, status = "REQUEST", "TENTATIVE"  # a hold waiting for payment
    else:
        method, status = "CANCEL", "CANCELLED"
    return invite(
        booking=booking,
        method=method,
        status=status,
        sequence=audit.version,
        stamp=audit.created_at,
    )


def invite(*, booking: Booking, method: str, status: str, sequence: int, stamp: datetime) -> bytes:
    """An RFC 5545 calendar with the booking's event, in the event's time zone.

    The UID is the booking's, so a later CANCEL (or a newer REQUEST, with a higher SEQUENCE:
    the booking's version) updates the entry a calendar made from the first one.
    """
    event, user = booking.event, booking.user
    facilitator = event.facilitator
    zone = _shown_in(event)

    organizer = vCalAddress(f"mailto:{facilitator.email}")
    organizer.params["CN"] = facilitator.name or facilitator.email
    attendee = vCalAddress(f"mailto:{user.email}")
    attendee.params.update(
        {
            "CN": user.name or user.email,
            "ROLE": "REQ-PARTICIPANT",
            "PARTSTAT": PARTICIPATION[status],
            # The booking is the answer; calendars should not ask the person to RSVP.
            "RSVP": "FALSE",
        }
    )
    calendar_event = CalendarEvent.new(
        uid=invite_uid(booking),
        sequence=sequence,
        stamp=stamp,
        start=event.starts_at.astimezone(zone),
        end=event.ends_at.astimezone(zone),
        summary=event.title,
        description=f"Your {PRODUCT_NAME} booking #{booking.pk}: {booking_url(booking)}",
        location=event.location or None,
        organizer=organizer,
        attendees=[attendee],
        status=status,
        url=booking_url(booking),
    )
    # Not Calendar.new(): it gives the calendar a random UID, and this file must be stable.
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    calendar.add_component(calendar_event)
    if zone is not UTC:
        # VTIMEZONE with the zone's rules around the event only (not 1970-2038).
        calendar.add_missing_timezones(
            first_date=event.starts_at.date() - VTIMEZONE_MARGIN,
            last_date=event.ends_at.date() + VTIMEZONE_MARGIN,
        )
    return calendar.to_ical()


def invite_uid(booking: Booking) -> str:
    return f"booking-{booking.pk}@{_public_host()}"


def booking_url(booking: Booking) -> str:
    return f"{settings.PUBLIC_BASE_URL}/bookings/{booking.pk}"


def when(event: Event) -> str:
    """The event's times in its own time zone: "Monday 1 March 2027, 18:00 to 20:00 CET (...)"."""
    zone = _shown_in(event)
    start, end = event.starts_at.astimezone(zone), event.ends_at.astimezone(zone)
    end_format = "H:i" if start.date() == end.date() else "l j F Y, H:i"
    text = f"{dateformat.format(start, 'l j F Y, H:i')} to {dateformat.format(end, end_format)}"
    if zone is UTC:
        return f"{text} UTC"
    return f"{text} {start.tzname()} ({event.timezone})"


# --- internals ------------------------------------------------------------------------------


def _shown_in(event: Event) -> tzinfo:
    """The zone an invite and an email show the event in: its own, or UTC when it cannot be.

    UTC for a row that validation (events.models) would refuse today: a zone that is no
    attendee's (an old row, or one written around validation), a date at an end of the
    calendar, or a length beyond LONGEST_EVENT (centuries of VTIMEZONE rules). The times stay
    right, calendars show UTC in the reader's own zone, and building never fails: a failed
    build was a 500 on calendar.ics and an email retried until it gave up.
    """
    if (
        event.timezone in attendee_timezones()
        and event.starts_at >= _SHOWABLE_FROM
        and event.ends_at <= _SHOWABLE_UNTIL
        and event.ends_at - event.starts_at <= LONGEST_EVENT
    ):
        return ZoneInfo(event.timezone)
    return UTC


def _context(booking: Booking, audit: BookingAudit, email: BookingEmail) -> dict:
    event = booking.event
    attendee = email.recipient_kind == EmailRecipient.ATTENDEE
    return {
        "product": PRODUCT_NAME,
        "recipient": booking.user if attendee else event.facilitator,
        "attendee": booking.user,
        "facilitator": event.facilitator,
        "booking": booking,
        "event": event,
        "when": when(event),
        "amount": "free" if booking.payment_status == PaymentStatus.FREE else _money(booking),
        # Cancelled while paid: the money goes back next (and a "refund issued" email follows).
        "refund_coming": audit.to_payment_status == PaymentStatus.PAID,
        # A refund that also ended an active booking (e.g. refunded from Stripe's dashboard).
        "cancelled_by_refund": audit.from_status != audit.to_status
        and audit.to_status == BookingStatus.CANCELLED,
        "reason": event.cancellation_reason,
        "booking_url": booking_url(booking),
        "calendar_url": f"{booking_url(booking)}/calendar.ics",
        # Facilitators cannot open the attendee's booking; their registrations list shows it.
        "registrations_url": f"{settings.PUBLIC_BASE_URL}/facilitator/registrations/{event.pk}",
    }


def _invite_for_email(booking: Booking, audit: BookingAudit, email: BookingEmail):
    """A REQUEST with the confirmation; a CANCEL when a confirmed booking stops being one."""
    if email.recipient_kind != EmailRecipient.ATTENDEE:
        return None
    # From the transition, not the booking's state now: a retried confirmation sent after a
    # later cancellation still says CONFIRMED, and the CANCEL (higher SEQUENCE) wins anyway.
    if email.kind == EmailKind.CONFIRMED:
        method, status = "REQUEST", "CONFIRMED"
    elif audit.from_status == BookingStatus.CONFIRMED and audit.to_status != audit.from_status:
        # The person may have added the confirmed event to a calendar: take it out.
        method, status = "CANCEL", "CANCELLED"
    else:
        return None
    content = invite(
        booking=booking,
        method=method,
        status=status,
        sequence=audit.version,
        stamp=audit.created_at,
    )
    part = MIMEText(content.decode(), "calendar", "utf-8")
    part.set_param("method", method)  # what Gmail and Outlook look for to show an invite
    part.add_header("Content-Disposition", "attachment", filename="invite.ics")
    return part


def _money(booking: Booking) -> str:
    return f"{booking.amount} {booking.currency}"


def _public_host() -> str:
    return urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost"
