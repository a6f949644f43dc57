import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("crm")


class CrmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from bookings.signals import booking_changed
        from crm import receivers

        booking_changed.connect(
            receivers.queue_booking_notification, dispatch_uid="crm.queue_booking_notification"
        )
        if not settings.CRM_WEBHOOK_URL:
            # Once per process, not once per booking.
            logger.info("CRM notifications are off: CRM_WEBHOOK_URL is empty.")
