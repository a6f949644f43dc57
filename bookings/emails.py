"""What a booking email says: which emails a change owes, their text and HTML, the invite.

Building only: nothing here writes to the database or sends. Queueing and sending live in
`bookings.notifications`. The calendar invite (RFC 5545, built with `icalendar`) is the same
for the booker's confirmation email and `GET /bookings/{id}/calendar.ics`.

A group booking's guests (`is_guest`: attendees other than the booker, with an address of
their own) get their own confirmation and invite, under their own UID, so their calendar
entry is cancelled alone when their seat goes; the booker's emails sum up every seat.
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
    Attendee,
    AttendeeStatus,
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
    EmailKind.SEAT_CANCELLED: "A seat of your booking for {title} is cancelled",
}
# The booker's subjects that name the seats, for a booking of more than one.
GROUP_SUBJECTS = {EmailKind.HOLD_EXPIRED: "Your held seats for {title} were released"}
# What a guest is told: about their own seat (the booking and its money are the booker's).
GUEST_SUBJECTS = {
    EmailKind.CONFIRMED: "Your seat at {title} is confirmed",
    EmailKind.CANCELLED: "Your seat at {title} is cancelled",
    EmailKind.REFUNDED: "Your seat at {title} is cancelled",
    EmailKind.EVENT_CANCELLED: "{title} has been cancelled",
}

# One seat of a group booking cancelled; the booking goes on with the others (the audit row
# names the seat: `BookingAudit.attendee`).
SEAT_CANCELLATION = "booking.attendee_cancelled"
# The kind of a guest's email when the confirmed booking their seat is in ends.
GUEST_CANCELLATIONS = {
    "booking.event_cancelled": EmailKind.EVENT_CANCELLED,
    "booking.refunded": EmailKind.REFUNDED,
}


def emails_for_change(audit: BookingAudit) -> list[tuple[str, str]]:
    """The (recipient kind, email kind) pairs a booking transition owes; often none.

    A `GUEST` pair is one email to each guest the change concerns (`guests_for_change`), maybe
    none. Guests hear only of a confirmed booking: a hold's guests are told once it is paid.
    """
    was_confirmed = audit.from_status == BookingStatus.CONFIRMED
    if audit.change == SEAT_CANCELLATION:
        # A hold's seat: nobody was told of it (the confirmation lists the seats left).
        if not was_confirmed:
            return []
        return [
            (EmailRecipient.ATTENDEE, EmailKind.SEAT_CANCELLED),
            (EmailRecipient.GUEST, EmailKind.CANCELLED),
        ]
    if audit.to_status == BookingStatus.CONFIRMED and not was_confirmed:
        # Free at creation (booking.created), payment received (booking.paid), or confirmed.
        return [
            (EmailRecipient.ATTENDEE, EmailKind.CONFIRMED),
            (EmailRecipient.GUEST, EmailKind.CONFIRMED),
            (EmailRecipient.FACILITATOR, EmailKind.NEW_REGISTRATION),
        ]
    owed = []
    if audit.change == "booking.event_cancelled":
        owed.append((EmailRecipient.ATTENDEE, EmailKind.EVENT_CANCELLED))
    elif audit.change == "booking.refunded":
        owed.append((EmailRecipient.ATTENDEE, EmailKind.REFUNDED))
    elif audit.change == "booking.cancelled":
        owed.append((EmailRecipient.ATTENDEE, EmailKind.CANCELLED))
    elif audit.change == "booking.expired" and audit.to_payment_status == PaymentStatus.UNPAID:
        owed.append((EmailRecipient.ATTENDEE, EmailKind.HOLD_EXPIRED))
    # booking.paid without a seat (a refund follows and is emailed), holds renewed, updates.
    if was_confirmed and audit.to_status != BookingStatus.CONFIRMED:
        # A confirmed booking ended: each guest's calendar entry goes with it.
        kind = GUEST_CANCELLATIONS.get(audit.change, EmailKind.CANCELLED)
        owed.append((EmailRecipient.GUEST, kind))
    return owed


def guests_for_change(booking: Booking, audit: BookingAudit, booker_email: str) -> list[Attendee]:
    """The guests a change's `GUEST` emails go to, in seat order.

    The seat cancelled alone, or every guest whose seat is still held: a guest whose seat was
    cancelled earlier got its cancellation then and hears nothing more. `attendees.all()`: one
    query, or none when the caller prefetched them (a cancelled event's batch).
    """
    if audit.change == SEAT_CANCELLATION:
        seated = [audit.attendee] if audit.attendee_id else []
    else:
        seated = [
            attendee
            for attendee in booking.attendees.all()
            if attendee.status == AttendeeStatus.ACTIVE
        ]
    return [attendee for attendee in seated if is_guest(attendee, booker_email)]


def is_guest(attendee: Attendee, booker_email: str) -> bool:
    """Whether the person in this seat gets emails of their own: not the booker, and with an
    address that is not the booker's (whose emails already tell about every seat)."""
    return (
        not attendee.is_booker
        and bool(attendee.email)
        and attendee.email.casefold() != booker_email.casefold()
    )


def build_message(email: BookingEmail) -> EmailMultiAlternatives:
    """The email for one `BookingEmail` row, from the booking as it is now and its transition."""
    booking = Booking.objects.select_related("user", "event", "event__facilitator").get(
        pk=email.booking_id
    )
    audit = BookingAudit.objects.select_related("attendee").get(
        booking=booking, version=email.audit_version
    )
    event = booking.event
    context = _context(booking, audit, email)
    if email.recipient_kind == EmailRecipient.GUEST:
        template = f"bookings/email/guest/{email.kind}"
        subject = GUEST_SUBJECTS[email.kind]
    else:
        template = f"bookings/email/{email.kind}"
        subject = SUBJECTS[email.kind]
        if context["seats"] > 1:
            subject = GROUP_SUBJECTS.get(email.kind, subject)
    subject = subject.format(title=event.title)
    message = EmailMultiAlternatives(
        subject=" ".join(f"{PRODUCT_NAME}: {subject}".split()),  # no newline from a title
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        headers={
            # The same on every attempt: a receiver can drop a copy of a resent message.
            "Message-ID": f"<booking-email-{email.pk}@{public_host()}>",
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


def invite(
    *,
    booking: Booking,
    method: str,
    status: str,
    sequence: int,
    stamp: datetime,
    guest: Attendee | None = None,
) -> bytes:
    """An RFC 5545 calendar with the booking's event, in the event's time zone.

    The UID is the booking's, so a later CANCEL (or a newer REQUEST, with a higher SEQUENCE:
    the booking's version) updates the entry a calendar made from the first one. A `guest`'s
    invite has the guest's own UID, so cancelling their seat alone takes out their entry only.
    """
    event, booker = booking.event, booking.user
    person = guest or booker
    facilitator = event.facilitator
    zone = _shown_in(event)

    organizer = vCalAddress(f"mailto:{facilitator.email}")
    organizer.params["CN"] = facilitator.name or facilitator.email
    attendee = vCalAddress(f"mailto:{person.email}")
    attendee.params.update(
        {
            "CN": person.name or person.email,
            "ROLE": "REQ-PARTICIPANT",
            "PARTSTAT": PARTICIPATION[status],
            # The booking is the answer; calendars should not ask the person to RSVP.
            "RSVP": "FALSE",
        }
    )
    if guest is None:
        description = f"Your {PRODUCT_NAME} booking #{booking.pk}: {booking_url(booking)}"
        url = booking_url(booking)
    else:  # the booking's page is the booker's: a guest cannot open it
        description = (
            f"Booked for you by {booker.name or booker.email} ({PRODUCT_NAME} booking "
            f"#{booking.pk})"
        )
        url = None
    calendar_event = CalendarEvent.new(
        uid=invite_uid(booking, guest),
        sequence=sequence,
        stamp=stamp,
        start=event.starts_at.astimezone(zone),
        end=event.ends_at.astimezone(zone),
        summary=event.title,
        description=description,
        location=event.location or None,
        organizer=organizer,
        attendees=[attendee],
        status=status,
        url=url,
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


def invite_uid(booking: Booking, guest: Attendee | None = None) -> str:
    """The booking's UID (the booker's entry), or a guest's own."""
    if guest is not None:
        return f"attendee-{guest.pk}@{public_host()}"
    return f"booking-{booking.pk}@{public_host()}"


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


def at_event_time(event: Event, moment: datetime) -> str:
    """A moment in the event's own time zone, as `when` shows the event: "Monday 1 March 2027,
    18:00 CET (Europe/Berlin)" (a waitlist offer's expiry)."""
    zone = _shown_in(event)
    local = moment.astimezone(zone)
    text = dateformat.format(local, "l j F Y, H:i")
    if zone is UTC:
        return f"{text} UTC"
    return f"{text} {local.tzname()} ({event.timezone})"


def money(amount, currency: str) -> str:
    """An amount as emails show it: "49.50 EUR"."""
    return f"{amount} {currency}"


def public_host() -> str:
    """The host of PUBLIC_BASE_URL: Message-IDs and invite UIDs are made unique under it."""
    return urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost"


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
    recipient = {
        EmailRecipient.ATTENDEE: booking.user,
        EmailRecipient.FACILITATOR: event.facilitator,
        EmailRecipient.GUEST: email.attendee if email.attendee_id else None,
    }[email.recipient_kind]
    free = booking.payment_status == PaymentStatus.FREE
    # The seats as the transition left them: a seat cancelled alone since, by a later change,
    # is counted back in, so a retried email tells what its transition did.
    cancelled_later = list(
        BookingAudit.objects.filter(
            booking=booking, change=SEAT_CANCELLATION, version__gt=audit.version
        ).values_list("attendee_id", flat=True)
    )
    seats = booking.seats + len(cancelled_later)
    amount = booking.amount + booking.seat_price * len(cancelled_later)
    booker_summary = email.recipient_kind == EmailRecipient.ATTENDEE and (
        seats > 1 or email.kind == EmailKind.SEAT_CANCELLED
    )
    return {
        "product": PRODUCT_NAME,
        "recipient": recipient,
        "booker": booking.user,
        "facilitator": event.facilitator,
        "booking": booking,
        "event": event,
        "when": when(event),
        "amount": "free" if free else money(amount, booking.currency),
        "seats": seats,
        # One seat's price (and share of a refund): `amount` is the price per seat times seats.
        "seat_price": money(booking.seat_price, booking.currency),
        # The booker's list of who sits where (a guest's email is about their own seat).
        "seated": _seated(booking, cancelled_later, booking.user.email) if booker_summary else [],
        # The seat a `seat_cancelled` email is about, and whether they got an email of their own.
        "seat": audit.attendee,
        "seat_told": audit.attendee is not None and is_guest(audit.attendee, booking.user.email),
        "seat_alone": audit.change == SEAT_CANCELLATION,
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
    """A REQUEST with the confirmation; a CANCEL when a confirmed booking (or, for a guest,
    their confirmed seat) stops being one."""
    if email.recipient_kind == EmailRecipient.FACILITATOR:
        return None
    guest = email.attendee if email.recipient_kind == EmailRecipient.GUEST else None
    # From the transition, not the booking's state now: a retried confirmation sent after a
    # later cancellation still says CONFIRMED, and the CANCEL (higher SEQUENCE) wins anyway.
    if email.kind == EmailKind.CONFIRMED:
        method, status = "REQUEST", "CONFIRMED"
    elif guest is not None or (
        audit.from_status == BookingStatus.CONFIRMED and audit.to_status != audit.from_status
    ):
        # The person may have added the confirmed event to a calendar: take it out. A guest
        # is written to only when their confirmed seat goes (`emails_for_change`).
        method, status = "CANCEL", "CANCELLED"
    else:
        return None
    content = invite(
        booking=booking,
        method=method,
        status=status,
        sequence=audit.version,
        stamp=audit.created_at,
        guest=guest,
    )
    part = MIMEText(content.decode(), "calendar", "utf-8")
    part.set_param("method", method)  # what Gmail and Outlook look for to show an invite
    part.add_header("Content-Disposition", "attachment", filename="invite.ics")
    return part


def _seated(booking: Booking, cancelled_later: list[int], booker_email: str) -> list[dict]:
    """Who held the booking's seats after the transition, in seat order, for the booker."""
    return [
        {
            "name": attendee.name,
            "is_booker": attendee.is_booker,
            # Their own confirmation and invite went (or go) to this address.
            "own_email": attendee.email if is_guest(attendee, booker_email) else "",
        }
        for attendee in booking.attendees.all()
        if attendee.status == AttendeeStatus.ACTIVE or attendee.pk in cancelled_later
    ]
