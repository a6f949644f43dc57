from django.core.management.base import BaseCommand

from bookings.services import expire_stale_holds


class Command(BaseCommand):
    help = "Mark pending bookings whose hold lapsed as expired (their seats already count as free)."

    def handle(self, *args, **options):
        # Batch after batch, as the sweeps do, until one expires nothing more.
        count = 0
        while expired := expire_stale_holds():
            count += expired
        self.stdout.write(f"{count} holds expired.")
