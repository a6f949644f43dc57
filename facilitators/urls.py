from django.urls import re_path

from facilitators import views

urlpatterns = [
    re_path(
        r"^facilitator/registrations/(?P<event_id>[0-9]+)/?$",
        views.RegistrationsView.as_view(),
        name="facilitator-registrations",
    ),
    re_path(
        r"^facilitator/cancel/(?P<event_id>[0-9]+)/?$",
        views.CancelEventView.as_view(),
        name="facilitator-cancel",
    ),
    re_path(
        r"^facilitator/events/?$", views.FacilitatorEventsView.as_view(), name="facilitator-events"
    ),
]
