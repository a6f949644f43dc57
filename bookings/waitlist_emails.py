"""What a waitlist email says: which change owes one, its text and HTML.

Building only, as `bookings.emails` is for bookings (whose times, money and Message-ID host
these share); queueing and sending live in `bookings.notifications`. The person waiting hears
of joining (with their place), of seats offered (until when, and how to accept) and of the
entry ending unasked (the offer lapsed, or the event was cancelled). Accepting makes a booking,
whose own emails follow; declining and leaving are the person's own doing and owe nothing.
"""

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from bookings import emails
from bookings.models import WaitlistEmail, WaitlistEmailKind, WaitlistEntry

# The email each waitlist change owes (`bookings.services.waitlist`); other changes owe none.
KINDS = {
    "waitlist.joined": WaitlistEmailKind.JOINED,
    "waitlist.offered": WaitlistEmailKind.OFFERED,
    "waitlist.expired": WaitlistEmailKind.EXPIRED,
}
SUBJECTS = {
    WaitlistEmailKind.JOINED: "You are on the waitlist for {title}",
    WaitlistEmailKind.OFFERED: "Seats are waiting for you at {title}",
    WaitlistEmailKind.EXPIRED: "Your offer for {title} expired",
}
# The reason `waitlist.end_for_cancelled_event` gives the entries it ends.
EVENT_CANCELLED = "event cancelled"
EVENT_CANCELLED_SUBJECT = "{title} has been cancelled"


def kind_for_change(change: str) -> str | None:
    """The kind of email a waitlist change owes the person, or None."""
    return KINDS.get(change)


def entry_url(entry: WaitlistEntry) -> str:
    return f"{settings.PUBLIC_BASE_URL}/waitlist/{entry.pk}"


def build_message(email: WaitlistEmail) -> EmailMultiAlternatives:
    """The email for one `WaitlistEmail` row, from its entry and event as they are now.

    The entry's fields an email tells about (seats, the offer's expiry, why it ended) do not
    change after its change: an entry is offered once and ends once.
    """
    entry = WaitlistEntry.objects.select_related("user", "event", "event__facilitator").get(
        pk=email.entry_id
    )
    event = entry.event
    event_cancelled = email.kind == WaitlistEmailKind.EXPIRED and entry.reason == EVENT_CANCELLED
    subject = EVENT_CANCELLED_SUBJECT if event_cancelled else SUBJECTS[email.kind]
    context = _context(entry, email, event_cancelled=event_cancelled)
    template = f"bookings/email/waitlist/{email.kind}"
    message = EmailMultiAlternatives(
        # No newline from a title.
        subject=" ".join(f"{emails.PRODUCT_NAME}: {subject.format(title=event.title)}".split()),
        body=render_to_string(f"{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to_email],
        headers={
            # The same on every attempt: a receiver can drop a copy of a resent message.
            "Message-ID": f"<waitlist-email-{email.pk}@{emails.public_host()}>",
            "Auto-Submitted": "auto-generated",  # RFC 3834: no vacation auto-replies
        },
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    return message


def _context(entry: WaitlistEntry, email: WaitlistEmail, *, event_cancelled: bool) -> dict:
    event = entry.event
    url = entry_url(entry)
    return {
        "product": emails.PRODUCT_NAME,
        "recipient": entry.user,
        "facilitator": event.facilitator,
        "event": event,
        "when": emails.when(event),
        "entry": entry,
        "seats": entry.seats,
        "position": email.position,
        "offer_expires": (
            emails.at_event_time(event, entry.offer_expires_at) if entry.offer_expires_at else ""
        ),
        # Accepting books at the event's price, as `POST /bookings/` does (price x seats).
        "paid": not event.is_free,
        "amount": emails.money(event.price * entry.seats, event.currency),
        "seat_price": emails.money(event.price, event.currency),
        "entry_url": url,
        "accept_url": f"{url}/accept",
        "decline_url": f"{url}/decline",
        "event_cancelled": event_cancelled,
        "was_offered": entry.offered_at is not None,
        "reason": event.cancellation_reason,
    }
