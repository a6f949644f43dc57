import logging

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

logger = logging.getLogger("crm")


class CrmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from bookings.signals import booking_changed, waitlist_changed
        from crm import notifier
        from crm.checks import check_inbound_secret_is_not_sent_out

        checks.register(check_inbound_secret_is_not_sent_out, checks.Tags.security, deploy=True)

        booking_changed.connect(
            notifier.on_booking_changed, dispatch_uid="crm.queue_booking_notification"
        )
        waitlist_changed.connect(
            notifier.on_waitlist_changed, dispatch_uid="crm.queue_waitlist_notification"
        )
        if not settings.CRM_WEBHOOK_URL:
            # Once per process, not once per booking.
            logger.info("CRM notifications are off: CRM_WEBHOOK_URL is empty.")
