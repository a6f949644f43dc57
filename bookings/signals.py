"""Signals other apps listen to; bookings never import those apps."""

from django.dispatch import Signal

# Sent inside the transaction of every booking change, after its audit row is written, with
# `booking` and `audit` (the BookingAudit row: version, change, states, actor, reason).
# Receivers that enqueue tasks get them committed or rolled back with the change.
booking_changed = Signal()

# Sent inside the transaction of every waitlist change (bookings.services.waitlist), with
# `entry` (the WaitlistEntry as committed), `change` ("waitlist.offered", ...) and `occurred_at`.
waitlist_changed = Signal()
