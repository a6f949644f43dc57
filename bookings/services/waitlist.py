"""The waitlist: people waiting for seats of a sold-out event, offered freed seats in order.

Seat accounting stays in `booking`'s counters, under the event's row lock (the lock order:
the event, then the entry or booking):

- a waiting entry's seats are in `Event.seats_waiting`: nobody else can book them, so seats
  freed while people wait are theirs (`booking.has_free_seats` leaves them);
- an offer's seats are in `Event.seats_claimed`, like a hold's: they count as taken for
  everyone else until the offer is accepted (the booking takes them over), declined, left or
  lapsed (`WAITLIST_OFFER_MINUTES`, never past the event's start).

Whenever seats are freed on an event with people waiting (`booking.claim_seats`), a task is
enqueued in that transaction: `offer_freed_seats` offers them to the waiting entries in the
order they joined. An entry asking for more seats than are free waits at the head and the
ones behind it wait too, unless WAITLIST_SKIP_LARGER lets smaller entries behind it take
them (the skipped entry keeps its place). The scheduler (`manage.py sweep`) expires lapsed
offers and enqueues the task again for any event with free seats and people waiting, so
offers are made even if a task was lost or the worker was down.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from ahoum.db import service_transaction
from bookings import notifications, tasks
from bookings.exceptions import (
    AlreadyBooked,
    AlreadyWaiting,
    EventNotFound,
    NotWaiting,
    OfferNotOpen,
    SeatsAvailable,
    TooManySeats,
    WaitlistClosed,
)
from bookings.models import Booking, WaitlistEntry, WaitlistStatus
from bookings.services import booking as booking_service
from bookings.signals import waitlist_changed
from events import cache as catalogue_cache
from events.models import Event, EventStatus

logger = logging.getLogger(__name__)

# Entries looked at per offering transaction; a full batch enqueues the next one.
OFFER_BATCH = 200


def join(*, user, event_id: int, seats: int = 1) -> WaitlistEntry:
    """Put `user` on the waitlist of a sold-out event for `seats` seats.

    Refused while they can book (`seats_available`), have a booking (`already_booked`) or are
    on the list already (`already_waiting`), and for an event that cannot be booked.
    """
    now = timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().filter(pk=event_id).order_by().first()
        if event is None:
            raise EventNotFound()
        booking_service.check_bookable(event, user.pk, now)
        if not event.waitlist_open:
            raise WaitlistClosed()
        if seats > event.max_seats_per_booking:
            raise TooManySeats(
                f"This event takes at most {event.max_seats_per_booking} seats per booking."
            )
        mine = Booking.objects.filter(user=user, event=event).active().order_by().first()
        if mine is not None and mine.holds_seat(now):
            raise AlreadyBooked(booking_id=mine.pk)
        waiting = WaitlistEntry.objects.filter(user=user, event=event).open().first()
        if waiting is not None:
            raise AlreadyWaiting(entry=waiting)
        if booking_service.has_free_seats(event, now, seats):
            raise SeatsAvailable(seats_left=booking_service.public_seats_left(event))
        entry = WaitlistEntry(event=event, user=user, seats=seats, created_at=now)
        try:
            with transaction.atomic():
                entry.save(force_insert=True)
        except IntegrityError:  # joined at the same moment in another request
            raise AlreadyWaiting(
                entry=WaitlistEntry.objects.filter(user=user, event=event).open().first()
            ) from None
        _count_waiting(event, seats)
        _announce(entry, change="waitlist.joined", now=now)
    return entry


def position(entry: WaitlistEntry) -> int | None:
    """1 for the next person offered seats; None once the entry is no longer waiting."""
    if entry.status != WaitlistStatus.WAITING:
        return None
    positions = WaitlistEntry.objects.filter(pk=entry.pk).with_positions()
    return positions.values_list("queue_position", flat=True).get()


def offer_freed_seats(*, event_id: int, now: datetime | None = None) -> int:
    """Offer the event's free seats to its waiting entries, in order; how many were offered.

    Idempotent and safe beside other workers: it locks the event, and offers only seats the
    counter has free.
    """
    now = now or timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().filter(pk=event_id).order_by().first()
        if event is None or not event.seats_waiting:
            return 0
        if event.status != EventStatus.SCHEDULED or event.starts_at <= now:
            return 0
        if event.seats_claimed >= event.capacity:
            booking_service.expire_lapsed_holds(event, now)  # their seats are free
        free = event.capacity - event.seats_claimed
        offered = looked_at = 0
        entries = WaitlistEntry.objects.queue(event).select_related("user")
        batch = list(entries.select_for_update(no_key=True, of=("self",))[:OFFER_BATCH])
        # Who of them booked seats the public could take before this ran (one query).
        booked = set(
            Booking.objects.filter(event=event, user_id__in=[entry.user_id for entry in batch])
            .active()
            .values_list("user_id", flat=True)
        )
        for entry in batch:
            looked_at += 1
            entry.event = event  # the locked row (its emails and CRM payload read it)
            if free <= 0:
                break
            if entry.user_id in booked:
                # They booked seats the public could take before this ran: no offer as well.
                _end(entry, event, WaitlistStatus.LEFT, reason="booked directly", now=now)
                _announce(entry, change="waitlist.left", now=now)
                continue
            if entry.seats > free:
                if settings.WAITLIST_SKIP_LARGER:
                    continue
                break
            _offer(entry, event, now)
            free -= entry.seats
            offered += 1
        if looked_at == OFFER_BATCH and free > 0:
            tasks.offer_freed_seats.enqueue(event.pk)  # more entries behind this batch
    return offered


def _offer(entry: WaitlistEntry, event: Event, now: datetime) -> None:
    minutes = timedelta(minutes=settings.WAITLIST_OFFER_MINUTES)
    entry.status = WaitlistStatus.OFFERED
    entry.offered_at = now
    entry.offer_expires_at = min(now + minutes, event.starts_at)
    _save(entry, "status", "offered_at", "offer_expires_at")
    _count_waiting(event, -entry.seats)
    booking_service.claim_seats(event, entry.seats)
    _announce(entry, change="waitlist.offered", now=now)


def lock_open_offer(*, offer_id: int, user, event: Event, now: datetime) -> WaitlistEntry:
    """The person's open offer for the locked `event`, locked; `offer_not_open` otherwise."""
    offer = (
        WaitlistEntry.objects.select_for_update(no_key=True)
        .filter(pk=offer_id, user=user, event=event)
        .first()
    )
    if offer is None or not offer.offer_open(now):
        raise OfferNotOpen()
    return offer


def accepted(offer: WaitlistEntry, *, booking: Booking, now: datetime) -> None:
    """Record that a locked offer became `booking` (`booking.book_event`, which took its seats)."""
    offer.status = WaitlistStatus.ACCEPTED
    offer.booking = booking
    offer.ended_at = now
    _save(offer, "status", "booking", "ended_at")
    _announce(offer, change="waitlist.accepted", now=now)


def reopen_offer(booking: Booking, *, now: datetime) -> None:
    """The booking an offer became could not be paid for (Stripe failed at checkout, and its
    hold is released): the offer is open again, its seats reserved again, until its expiry.

    Call in the transaction that released the hold (the event and booking locked)."""
    offer = (
        WaitlistEntry.objects.select_for_update(no_key=True)
        .filter(booking=booking, status=WaitlistStatus.ACCEPTED)
        .first()
    )
    if offer is None or offer.offer_expires_at <= now:
        return
    offer.status = WaitlistStatus.OFFERED
    offer.booking = None
    offer.ended_at = None
    _save(offer, "status", "booking", "ended_at")
    booking_service.claim_seats(booking.event, offer.seats)
    # The CRM hears the entry is offered again; no email: the person got the error at once.
    _announce(offer, change="waitlist.reopened", now=now)


def accept(*, entry: WaitlistEntry, by, attendees=()) -> Booking:
    """Turn an open offer into a booking, as `POST /bookings/` books (and Checkout if paid)."""
    from bookings.services import payments

    return payments.book_with_checkout(
        user=by, event_id=entry.event_id, attendees=attendees, offer_id=entry.pk
    )


def leave(*, entry: WaitlistEntry, by, declined: bool = False) -> WaitlistEntry:
    """Take the person off the list; an outstanding offer's seats go to the next person.

    `declined`: they turned down their offer (only an open offer can be declined).
    """
    now = timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().get(pk=entry.event_id)
        entry = WaitlistEntry.objects.select_for_update(no_key=True).get(pk=entry.pk)
        if declined and entry.status != WaitlistStatus.OFFERED:
            raise NotWaiting("There is no open offer to decline.")
        if entry.status not in (WaitlistStatus.WAITING, WaitlistStatus.OFFERED):
            raise NotWaiting(f"This waitlist entry is already {entry.status}.")
        _end(entry, event, WaitlistStatus.LEFT, reason="declined" if declined else "left", now=now)
        change = "waitlist.declined" if declined else "waitlist.left"
        _announce(entry, change=change, now=now)
    return entry


def expire_offer(*, entry_id: int, now: datetime | None = None) -> bool:
    """Mark one lapsed offer `expired`, its seats passed on. False if it changed meanwhile."""
    now = now or timezone.now()
    with service_transaction():
        event_id = WaitlistEntry.objects.filter(pk=entry_id).values_list("event_id", flat=True)
        event = Event.objects.select_for_update().get(pk=event_id[0])
        entry = WaitlistEntry.objects.select_for_update(no_key=True).get(pk=entry_id)
        if entry.status != WaitlistStatus.OFFERED or entry.offer_expires_at > now:
            return False
        _end(entry, event, WaitlistStatus.EXPIRED, reason="offer not taken in time", now=now)
        _announce(entry, change="waitlist.expired", now=now)
    return True


def expire_stale_offers(*, now: datetime | None = None, limit: int = 500) -> int:
    """Mark up to `limit` lapsed offers expired (the scheduler); one transaction each."""
    now = now or timezone.now()
    stale = WaitlistEntry.objects.stale_offers(now).order_by("offer_expires_at", "pk")
    ids = list(stale.values_list("pk", flat=True)[:limit])
    return sum(expire_offer(entry_id=pk, now=now) for pk in ids)


def end_for_cancelled_event(*, event_id: int, limit: int = 200) -> int:
    """Expire up to `limit` open entries of a cancelled event (told so); how many."""
    now = timezone.now()
    with service_transaction():
        event = Event.objects.select_for_update().get(pk=event_id)
        if event.status != EventStatus.CANCELLED:
            return 0
        entries = WaitlistEntry.objects.filter(event=event).open().order_by("created_at", "id")
        ended = 0
        for entry in entries.select_for_update(no_key=True)[:limit]:
            _end(entry, event, WaitlistStatus.EXPIRED, reason="event cancelled", now=now)
            _announce(entry, change="waitlist.expired", now=now)
            ended += 1
    return ended


def has_open_entries(event_id: int) -> bool:
    return WaitlistEntry.objects.filter(event_id=event_id).open().exists()


def set_open(*, event: Event, is_open: bool) -> Event:
    """Open or close an event's waitlist to new people; those waiting keep their place."""
    with service_transaction():
        event = Event.objects.select_for_update().get(pk=event.pk)
        event.waitlist_open = is_open
        event.save(update_fields=["waitlist_open", "updated_at"])
    return event


def enqueue_offers_where_due() -> int:
    """Enqueue `offer_freed_seats` for every event with free seats and people waiting (the
    scheduler's safety net for a lost task); how many."""
    due = Event.objects.filter(
        status=EventStatus.SCHEDULED,
        starts_at__gt=timezone.now(),
        seats_waiting__gt=0,
        seats_claimed__lt=F("capacity"),
    ).values_list("pk", flat=True)
    events = list(due[:1000])
    for event_id in events:
        tasks.offer_freed_seats.enqueue(event_id)
    return len(events)


# --- the steps ---------------------------------------------------------------------------------


def _end(entry: WaitlistEntry, event: Event, status: str, *, reason: str, now: datetime) -> None:
    """End a locked open entry; its seats leave the waiting count or, offered, are freed."""
    was = entry.status
    entry.status = status
    entry.ended_at = now
    entry.reason = reason[:255]
    _save(entry, "status", "ended_at", "reason")
    if was == WaitlistStatus.WAITING:
        _count_waiting(event, -entry.seats)
    else:
        booking_service.claim_seats(event, -entry.seats)  # offered to the next person


def _count_waiting(event: Event, delta: int) -> None:
    Event.objects.filter(pk=event.pk).update(seats_waiting=F("seats_waiting") + delta)
    event.seats_waiting += delta
    catalogue_cache.invalidate()  # seats_left and seats_waiting changed


def _save(entry: WaitlistEntry, *fields: str) -> None:
    entry.version += 1
    entry.save(update_fields=[*fields, "version"])


def _announce(entry: WaitlistEntry, *, change: str, now: datetime) -> None:
    """Queue the change's emails and tell other apps (the CRM), in the change's transaction."""
    logger.info(
        "waitlist change",
        extra={"entry_id": entry.pk, "event_id": entry.event_id, "change": change,
               "seats": entry.seats, "version": entry.version},
    )  # fmt: skip
    notifications.queue_waitlist_emails(entry=entry, change=change)
    waitlist_changed.send(sender=WaitlistEntry, entry=entry, change=change, occurred_at=now)
