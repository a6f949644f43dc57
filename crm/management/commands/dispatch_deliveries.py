from django.core.management.base import BaseCommand

from crm.services import dispatch_first_attempts


class Command(BaseCommand):
    help = (
        "Make the first attempt of every CRM delivery waiting for one. A safety net for a "
        "scheduler: each change already wakes a dispatch after it commits."
    )

    def handle(self, *args, **options):
        total = 0
        while taken := dispatch_first_attempts():
            total += taken
        self.stdout.write(f"{total} deliveries attempted.")
