"""Booking, cancelling, renewing and expiring a seat: the one place seats are counted.

Every function here is one transaction that takes its lock first, checks, writes the booking
and its audit row, and returns (pretix's `_perform_order`: lock, check, write). The other
modules of `bookings.services` change a booking's state only through `transition()` here.

Lock order, everywhere: the event row, then the booking row. The event row guards the
capacity invariant (seats held + confirmed <= capacity) and carries the `seats_claimed`
counter (pending or confirmed bookings), which `transition()` moves in the same transaction
whenever a booking enters or leaves those states; so every change of state locks the event
first, even one that only releases a seat. Lock waits are bounded (`service_transaction`):
a hot event gives a clean 503, never a pile of waiting workers.

A hold that lapses stops counting as a seat at once (`Event.seats_taken`, the catalogue's
`seats_left`); the scheduler (`manage.py sweep`) marks it `expired` a little later, which
announces `booking.expired`. A booking that finds the counter full marks the event's lapsed
holds expired itself, so their seats can be booked before the scheduler gets there.
"""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ahoum.db import service_transaction
from bookings import notifications, tasks
from bookings.exceptions import (
    AlreadyBooked,
    AttendeeNotFound,
    CancellationCutoffPassed,
    EventNotBookable,
    EventNotFound,
    NotCancellable,
    NotPayable,
    OwnEvent,
    SoldOut,
    TooManyAttendees,
    TooManySeats,
)
from bookings.models import (
    ACTIVE_STATUSES,
    Attendee,
    AttendeeStatus,
    Booking,
    BookingAudit,
    BookingStatus,
    Payment,
    PaymentStatus,
)
from bookings.money import STRIPE_MAX_AMOUNT_MINOR, minor_units
from bookings.services import payments, refunds, waitlist
from bookings.signals import booking_changed
from events import cache as catalogue_cache
from events.models import Event, EventStatus

logger = logging.getLogger(__name__)

STATUS_TIMESTAMPS = {
    BookingStatus.CONFIRMED: "confirmed_at",
    BookingStatus.CANCELLED: "cancelled_at",
    BookingStatus.EXPIRED: "expired_at",
}
PAYMENT_TIMESTAMPS = {PaymentStatus.PAID: "paid_at", PaymentStatus.REFUNDED: "refunded_at"}


def book_event(
    *,
    user,
    event_id: int,
    seats: int = 1,
    attendees: Sequence[dict] = (),
    offer_id: int | None = None,
) -> Booking:
    """Confirm free seats or hold paid ones for `user`: all `seats` or none, never more seats
    than capacity. `attendees`: who sits in them ({"name", "email"}, at most `seats`; see
    `seat_holders`).

    Lock the event, check it can take the seats, write the booking and its attendees and
    count the seats. One active booking per person and event is the partial unique index's:
    a second one is refused by the insert (in a savepoint, so only the insert is undone), which
    costs nothing when there is none, the usual case, instead of a query on every booking.

    `offer_id`: the person's open waitlist offer, whose seats (already claimed for them) the
    booking takes; a paid hold then lasts as long as the offer did.
    """
    now = timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().filter(pk=event_id).order_by().first()
        if event is None:
            raise EventNotFound()
        check_bookable(event, user.pk, now)
        offer = None
        if offer_id is not None:
            offer = waitlist.lock_open_offer(offer_id=offer_id, user=user, event=event, now=now)
            seats = offer.seats
        elif seats > event.max_seats_per_booking:
            raise TooManySeats(
                f"This event takes at most {event.max_seats_per_booking} seats per booking."
            )
        elif minor_units(event.price * seats, event.currency) > STRIPE_MAX_AMOUNT_MINOR:
            raise TooManySeats("That many seats cost more than one payment can be; book fewer.")
        elif not has_free_seats(event, now, seats):
            left = public_seats_left(event)
            raise SoldOut(_sold_out_detail(left, seats), seats_left=left)
        booking = Booking(
            user=user,
            event=event,
            facilitator_id=event.facilitator_id,
            seats=seats,
            amount=event.price * seats,
            currency=event.currency,
            created_at=now,
        )
        if event.is_free:
            booking.status = BookingStatus.CONFIRMED
            booking.payment_status = PaymentStatus.FREE
            booking.confirmed_at = now
        else:
            booking.status = BookingStatus.PENDING
            booking.payment_status = PaymentStatus.UNPAID
            booking.hold_expires_at = now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
            if offer is not None:
                booking.hold_expires_at = offer.offer_expires_at
        try:
            with transaction.atomic():
                booking.save(force_insert=True)
        except IntegrityError:
            mine = Booking.objects.select_for_update(no_key=True).filter(user=user, event=event)
            mine = mine.active().order_by().first()
            if mine is None:
                raise  # another constraint
            if mine.holds_seat(now):
                raise AlreadyBooked(booking_id=mine.pk) from None
            # Their own lapsed hold, not marked yet: marked now, it frees the index and its seats.
            mine.event = event
            transition(mine, status=BookingStatus.EXPIRED, reason="hold expired", now=now)
            booking.save(force_insert=True)
        Attendee.objects.bulk_create(seat_holders(booking, user, attendees, now))
        if offer is None:
            claim_seats(event, seats)
            reason = "booked"
        else:  # the offer's seats, claimed already, are the booking's now
            waitlist.accepted(offer, booking=booking, now=now)
            reason = f"booked from waitlist offer #{offer.pk}"
        audit(booking, from_status="", from_payment_status="", actor=user, reason=reason, now=now)
    return booking


def seat_holders(
    booking: Booking, user, attendees: Sequence[dict], now: datetime
) -> list[Attendee]:
    """One `Attendee` per seat, in order: the people listed, the booker first unless listed.

    The booker takes the first seat unless the list names them (by email) or fills every
    seat itself (then they booked for others). Seats nobody is named for are the booker's
    guests: "Guest 2 of <booker>", no email.
    """
    if len(attendees) > booking.seats:
        raise TooManyAttendees(f"At most {booking.seats} attendees for {booking.seats} seats.")
    people = [{"name": person["name"], "email": person.get("email") or ""} for person in attendees]
    booker_email = user.email.casefold()
    listed = any(person["email"].casefold() == booker_email for person in people)
    if not listed and len(people) < booking.seats:
        people.insert(0, {"name": user.name or user.email, "email": user.email})
    booker_name = user.name or user.email
    while len(people) < booking.seats:
        people.append({"name": f"Guest {len(people) + 1} of {booker_name}", "email": ""})
    name_length = Attendee._meta.get_field("name").max_length
    return [
        Attendee(
            booking=booking,
            position=position,
            name=person["name"][:name_length],
            email=person["email"],
            is_booker=person["email"].casefold() == booker_email,
            created_at=now,
        )
        for position, person in enumerate(people, start=1)
    ]


def public_seats_left(event: Event) -> int:
    """The locked event's seats anyone may book: not claimed, not waited for by the waitlist."""
    return max(event.capacity - event.seats_claimed - event.seats_waiting, 0)


def _sold_out_detail(left: int, seats: int) -> str:
    if not left:
        return SoldOut.default_detail
    return f"Only {left} seat{'s' if left != 1 else ''} left; {seats} asked for."


def has_free_seats(
    event: Event, now: datetime, seats: int = 1, *, counted: Booking | None = None
) -> bool:
    """Whether the locked `event` has `seats` free seats for one more booking right now.

    `counted`: the caller's own lapsed hold, still pending and so still in the counter (a
    hold being renewed or paid late): it needs no seat more than the counter holds, as long
    as the counter is within capacity (which a capacity lowered meanwhile may have ended).

    The counter answers while seats are left. A full counter may still count holds that
    lapsed: they are marked expired here (what the scheduler would do a moment later), which
    frees their seats, and the counter is read again.
    """
    # A new claim also leaves the seats the waitlist waits for (they are offered first); a
    # lapsed hold of the caller's own never left the counter, so nobody was offered its seats.
    wanted = 0 if counted is not None else seats + event.seats_waiting
    if event.seats_claimed + wanted <= event.capacity:
        return True
    expire_lapsed_holds(event, now, keep=counted)
    return event.seats_claimed + wanted <= event.capacity


def expire_lapsed_holds(event: Event, now: datetime, *, keep: Booking | None = None) -> None:
    """Mark the locked event's lapsed unpaid holds expired (but `keep`), freeing their seats."""
    lapsed = Booking.objects.select_for_update(no_key=True).filter(event=event).stale_holds(now)
    lapsed = lapsed.filter(payment_status=PaymentStatus.UNPAID)
    if keep is not None:
        lapsed = lapsed.exclude(pk=keep.pk)
    for booking in lapsed.order_by("pk"):
        booking.event = event
        transition(booking, status=BookingStatus.EXPIRED, reason="hold expired", now=now)


def cancel_booking(
    *, booking: Booking, by, reason: str = "cancelled by attendee", apply_cutoff: bool = True
) -> Booking:
    """Cancel an active booking; its seat is free at once. A paid one owes a `Refund`.

    With `apply_cutoff`, a paid booking can only be cancelled more than
    CANCELLATION_CUTOFF_HOURS before the event starts. The refund is made by the worker
    (`refunds`), never in this transaction or the request; an unpaid hold's open Checkout
    Session is expired by a task, so it can no longer be paid.
    """
    now = timezone.now()
    with service_transaction():
        booking = lock_with_event(booking.pk)
        if booking.status not in ACTIVE_STATUSES:
            raise NotCancellable(f"This booking is already {booking.status}.")
        if apply_cutoff:
            check_cutoff(booking, now)
        cancel_locked(booking, actor=by, reason=reason, now=now)
    return booking


def cancel_attendee(
    *,
    booking: Booking,
    attendee_id: int,
    by,
    reason: str = "seat cancelled by the booker",
    apply_cutoff: bool = True,
) -> Booking:
    """Cancel one seat of an active booking: free at once, a paid one's share owed back.

    The booking keeps its other seats (`seats` and `amount` go down by one seat); its last
    seat cancels the booking (`cancel_booking`'s rules). A paid seat follows the same cutoff
    as a paid booking and is refunded for its share (`seat_price`), once. An unpaid hold's
    open Checkout Session is expired (it was for more seats); `POST /bookings/{id}/checkout`
    opens one for the seats left.
    """
    now = timezone.now()
    with service_transaction():
        booking = lock_with_event(booking.pk)
        attendee = (
            Attendee.objects.select_for_update().filter(booking=booking, pk=attendee_id).first()
        )
        if attendee is None:
            raise AttendeeNotFound()
        if booking.status not in ACTIVE_STATUSES:
            raise NotCancellable(f"This booking is already {booking.status}.")
        if attendee.status == AttendeeStatus.CANCELLED:
            raise NotCancellable("This seat is already cancelled.")
        if apply_cutoff:
            check_cutoff(booking, now)
        if booking.seats == 1:
            cancel_locked(booking, actor=by, reason=reason, now=now)
            return booking
        attendee.status = AttendeeStatus.CANCELLED
        attendee.cancelled_at = now
        attendee.save(update_fields=["status", "cancelled_at"])
        share = booking.seat_price
        booking.seats -= 1
        booking.amount -= share
        fields = {"seats", "amount"}
        if booking.payment_status == PaymentStatus.UNPAID:
            # Its session charges for the seats it had: no longer payable; a new one is opened
            # on request. Should the old one be paid all the same, that payment is refunded.
            payments.expire_open_checkout(booking)
            booking.checkout_session_id = booking.checkout_url = ""
            fields |= {"checkout_session_id", "checkout_url"}
        transition(
            booking,
            actor=by,
            reason=reason,
            now=now,
            extra_fields=fields,
            change="booking.attendee_cancelled",
            from_seats=booking.seats + 1,
            attendee=attendee,
        )
        if booking.payment_status == PaymentStatus.PAID:
            refunds.owe(
                booking=booking,
                payment=settling_payment(booking),
                amount=share,
                attendee=attendee,
                reason=f"{reason}: {attendee.name}",
                now=now,
            )
    return booking


def check_cutoff(booking: Booking, now: datetime) -> None:
    """A paid booking (or seat) is cancelled with a refund only until the cutoff."""
    cutoff = timedelta(hours=settings.CANCELLATION_CUTOFF_HOURS)
    if booking.payment_status == PaymentStatus.PAID and booking.event.starts_at - now < cutoff:
        raise CancellationCutoffPassed(
            "Paid bookings can be cancelled with a full refund until "
            f"{settings.CANCELLATION_CUTOFF_HOURS} hours before the event starts; "
            "that time has passed."
        )


def expire_hold(*, booking_id: int, now: datetime | None = None) -> bool:
    """Mark one lapsed, unpaid hold `expired`. False if it was paid or changed meanwhile."""
    now = now or timezone.now()
    with service_transaction():
        booking = lock_with_event(booking_id)
        if booking is None or booking.status != BookingStatus.PENDING:
            return False
        if booking.payment_status != PaymentStatus.UNPAID or booking.hold_expires_at > now:
            return False
        transition(booking, status=BookingStatus.EXPIRED, reason="hold expired", now=now)
    return True


def expire_stale_holds(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Mark up to `limit` lapsed holds `expired`, oldest first; how many it marked.

    Run by the scheduler (`manage.py sweep`). Bookkeeping: they already stopped counting as
    seats. One transaction per hold, so a sweep never holds an event's lock for long.
    """
    now = now or timezone.now()
    stale = (
        Booking.objects.stale_holds(now)
        .order_by("hold_expires_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(expire_hold(booking_id=pk, now=now) for pk in list(stale))


def release_hold(*, booking_id: int, reason: str, change: str = "") -> Booking | None:
    """End an unpaid hold now (payment failed, checkout expired or could not start)."""
    now = timezone.now()
    with service_transaction():
        booking = lock_with_event(booking_id)
        if booking is None:
            return None
        if (
            booking.status == BookingStatus.PENDING
            and booking.payment_status == PaymentStatus.UNPAID
        ):
            transition(booking, status=BookingStatus.EXPIRED, reason=reason, now=now, change=change)
            if change == "booking.checkout_failed":
                # "No seat is held; try again": a waitlist offer it came from is open again.
                waitlist.reopen_offer(booking, now=now)
    return booking


def renew_hold(*, booking: Booking, by) -> Booking:
    """Hold a seat again for an unpaid booking whose hold lapsed, if one is free."""
    now = timezone.now()
    with service_transaction():
        booking = lock_with_event(booking.pk, missing=Booking.DoesNotExist)
        event = booking.event
        if booking.payment_status != PaymentStatus.UNPAID or booking.status not in (
            BookingStatus.PENDING,
            BookingStatus.EXPIRED,
        ):
            raise NotPayable(f"This booking is {booking.status} and {booking.payment_status}.")
        if booking.holds_seat(now):
            return booking
        check_bookable(event, booking.user_id, now)
        if booked_again(booking):
            raise AlreadyBooked("You already have another booking for this event.")
        # A lapsed hold not yet marked expired is still in the counter; an expired one needs
        # a free seat again.
        counted = booking if booking.status == BookingStatus.PENDING else None
        if not has_free_seats(event, now, booking.seats, counted=counted):
            raise SoldOut(seats_left=public_seats_left(event))
        booking.hold_expires_at = now + timedelta(minutes=settings.BOOKING_HOLD_MINUTES)
        booking.checkout_session_id = booking.checkout_url = ""
        transition(
            booking,
            status=BookingStatus.PENDING,
            actor=by,
            reason="hold renewed for a new checkout",
            now=now,
            extra_fields={"hold_expires_at", "checkout_session_id", "checkout_url"},
        )
    return booking


# --- the steps every change is made of (for this package's other modules) ---------------------


def check_bookable(event: Event, user_id: int, now: datetime) -> None:
    if event.status != EventStatus.SCHEDULED:
        raise EventNotBookable("This event has been cancelled.")
    if event.starts_at <= now:
        raise EventNotBookable("This event has already started.")
    if event.facilitator_id == user_id:
        raise OwnEvent()


def booked_again(booking: Booking) -> bool:
    """The person has another active booking of the same event (made after this one lapsed)."""
    return (
        Booking.objects.filter(user_id=booking.user_id, event_id=booking.event_id)
        .active()
        .exclude(pk=booking.pk)
        .exists()
    )


def lock_with_event(booking_id: int, missing: type[Exception] | None = None) -> Booking | None:
    """Lock a booking's event row, then the booking (the lock order); the booking or None.

    With `missing`, an unknown id raises it instead of returning None.
    """
    event_id = Booking.objects.filter(pk=booking_id).values_list("event_id", flat=True).first()
    if event_id is None:
        if missing:
            raise missing(f"Booking {booking_id} does not exist.")
        return None
    event = Event.objects.select_for_update().get(pk=event_id)
    # FOR NO KEY UPDATE: the booking's key never changes, and rows that refer to it (a payment
    # issue, an email) may then be inserted by a transaction holding another row this one
    # waits for (a refund giving up) without waiting for this one: no deadlock.
    booking = Booking.objects.select_for_update(no_key=True).get(pk=booking_id)
    booking.event = event
    return booking


def claim_seats(event: Event, delta: int) -> None:
    """Move the locked event's `seats_claimed` counter by `delta`, in the row and in `event`.

    Seats freed while people wait are offered to them by a task, enqueued here: it commits
    with the change that freed them (and the scheduler enqueues it again should it be lost).
    """
    Event.objects.filter(pk=event.pk).update(seats_claimed=F("seats_claimed") + delta)
    event.seats_claimed += delta
    catalogue_cache.invalidate()  # seats_left changed
    if delta < 0 and event.seats_waiting:
        tasks.offer_freed_seats.enqueue(event.pk)


def cancel_locked(booking: Booking, *, reason: str, now: datetime, change: str = "", actor=None,
                  actor_id: int | None = None) -> None:  # fmt: skip
    """Cancel a locked active booking: its money is owed back, its open session expired."""
    paid = booking.payment_status == PaymentStatus.PAID
    transition(
        booking,
        status=BookingStatus.CANCELLED,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        now=now,
        change=change,
    )
    if paid:
        refunds.owe(booking=booking, payment=settling_payment(booking), reason=reason, now=now)
    # Unpaid: its session must not be paid now. Paid: a renewed hold's session may be open
    # (Stripe answers "not open" for the one that was paid, which changes nothing).
    payments.expire_open_checkout(booking)


def settling_payment(booking: Booking) -> Payment | None:
    """The Stripe payment the booking is settled by; None when paid outside Stripe."""
    # all(): one query, or none when the caller prefetched them (a cancelled event's batch).
    return next((payment for payment in booking.payments.all() if payment.settles_booking), None)


def transition(
    booking: Booking,
    *,
    status: str | None = None,
    payment_status: str | None = None,
    actor=None,
    actor_id: int | None = None,
    reason: str,
    now: datetime,
    extra_fields: set[str] = frozenset(),
    change: str = "",
    from_seats: int | None = None,
    attendee: Attendee | None = None,
) -> int:
    """Apply a state change to a locked booking and record it in the audit trail.

    Returns how the event's `seats_claimed` moved (by the booking's seats, or by the seats it
    gave up: `from_seats` is what it held before, when the caller changed `seats`); the
    counter is already written (and `booking.event`'s copy of it moved). The caller holds the
    event's row lock.
    """
    from_seats = booking.seats if from_seats is None else from_seats
    from_status, from_payment_status = booking.status, booking.payment_status
    fields = {"version", "updated_at", *extra_fields}
    if status and status != booking.status:
        booking.status = status
        fields.add("status")
        if stamp := STATUS_TIMESTAMPS.get(status):
            setattr(booking, stamp, now)
            fields.add(stamp)
    if payment_status and payment_status != booking.payment_status:
        booking.payment_status = payment_status
        fields.add("payment_status")
        if stamp := PAYMENT_TIMESTAMPS.get(payment_status):
            setattr(booking, stamp, now)
            fields.add(stamp)
    booking.version += 1
    booking.save(update_fields=sorted(fields))
    claimed = (booking.status in ACTIVE_STATUSES) * booking.seats - (
        from_status in ACTIVE_STATUSES
    ) * from_seats
    if claimed:
        claim_seats(booking.event, claimed)
    elif booking.status in ACTIVE_STATUSES:
        # A lapsed hold renewed or paid: the counter already held it, the catalogue did not.
        catalogue_cache.invalidate()
    audit(
        booking,
        from_status=from_status,
        from_payment_status=from_payment_status,
        actor=actor,
        actor_id=actor_id,
        reason=reason,
        now=now,
        change=change,
        attendee=attendee,
    )
    return claimed


def audit(
    booking: Booking,
    *,
    from_status: str,
    from_payment_status: str,
    actor,
    reason: str,
    now,
    change: str = "",
    actor_id: int | None = None,
    attendee: Attendee | None = None,
) -> BookingAudit:
    """Record a change in the audit trail, queue the emails it owes, and announce it.

    `booking_changed` is for other apps (the CRM's notifications); all of it commits or rolls
    back with the change.
    """
    entry = BookingAudit.objects.create(
        booking=booking,
        version=booking.version,
        change=change or _change_name(booking, from_status, from_payment_status),
        from_status=from_status,
        to_status=booking.status,
        from_payment_status=from_payment_status,
        to_payment_status=booking.payment_status,
        actor_id=actor.pk if actor is not None else actor_id,
        reason=reason[:255],
        attendee=attendee,
        created_at=now,
    )
    logger.info(
        "booking transition",
        extra={
            "booking_id": booking.pk,
            "event_id": booking.event_id,
            "change": entry.change,
            "version": entry.version,
            "from_status": from_status,
            "to_status": booking.status,
            "payment_status": booking.payment_status,
            "actor_id": entry.actor_id,
            "seats": booking.seats,
        },
    )
    notifications.queue_emails(booking=booking, audit=entry)
    booking_changed.send(sender=Booking, booking=booking, audit=entry)
    return entry


def _change_name(booking: Booking, from_status: str, from_payment_status: str) -> str:
    """What happened, as notification types name it (`booking.paid`, `booking.expired`...)."""
    if not from_status:
        return "booking.created"
    if booking.payment_status != from_payment_status and booking.payment_status in (
        PaymentStatus.PAID,
        PaymentStatus.REFUNDED,
    ):
        return f"booking.{booking.payment_status}"
    if booking.status != from_status:
        return f"booking.{booking.status}"
    return "booking.updated"
