"""`manage.py check --deploy` warnings about the CRM's configuration (registered in apps.py)."""

from django.conf import settings
from django.core import checks

from crm.permissions import inbound_secret


def check_inbound_secret_is_not_sent_out(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """The receiver's secret must not be the one every notification carries out as its token."""
    if not settings.CRM_WEBHOOK_URL or inbound_secret() != settings.CRM_WEBHOOK_SECRET:
        return []
    return [
        checks.Warning(
            "The CRM receiver accepts CRM_WEBHOOK_SECRET, which every notification sent to "
            "CRM_WEBHOOK_URL carries as its bearer token: whoever sees one can post "
            "notifications the receiver stores (and signed ones set the state staff see). "
            "Marking paid is not affected: it takes CRM_INBOUND_SIGNING_SECRET.",
            hint="Set CRM_INBOUND_SECRET to another random value and give it to the systems "
            "that notify this receiver (README: CRM).",
            id="crm.W001",
        )
    ]
