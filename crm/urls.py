from django.urls import re_path

from crm.views import CRMWebhookView, OriginalWebhookView

urlpatterns = [
    # The original's path, and one under the app's name; both with or without the slash.
    re_path(r"^webhook/?$", OriginalWebhookView.as_view(), name="webhook"),
    re_path(r"^crm/webhook/?$", CRMWebhookView.as_view(), name="crm-webhook"),
]
