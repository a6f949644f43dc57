from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from ahoum.errors import ErrorSerializer
from ahoum.pagination import CappedCountPagination
from events import cache, selectors, services
from events.filters import BOUNDED_PARAMETERS, EventFilter, catalogue_query
from events.models import Event
from events.permissions import EventPermission
from events.serializers import EventSerializer


@extend_schema_view(list=extend_schema(parameters=BOUNDED_PARAMETERS))
class EventViewSet(viewsets.ModelViewSet):
    """The catalogue: public reads, facilitators write their own events."""

    queryset = Event.objects.none()  # typed schema; rows come from get_queryset()
    serializer_class = EventSerializer
    permission_classes = [EventPermission]
    lookup_value_regex = r"[0-9]+"
    filterset_class = EventFilter
    pagination_class = CappedCountPagination
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        if self.action in ("list", "filter"):
            return selectors.catalogue()  # each page's details are read for its rows alone
        return Event.objects.for_catalogue()

    def paginate_queryset(self, queryset):
        return selectors.with_page_details(super().paginate_queryset(queryset))

    def list(self, request, *args, **kwargs):
        query = catalogue_query(request.query_params)  # a 400 naming unknown parameters
        return cache.cached(
            cache.list_page(request, query),
            lambda: super(EventViewSet, self).list(request, *args, **kwargs),
            when_repeated=True,  # endless one-off queries (`?starts_before=`) store no page
        )

    def retrieve(self, request, *args, **kwargs):
        # Nothing in the query string changes an event's page: it is ignored.
        return cache.cached(
            cache.event_page(int(kwargs[self.lookup_field])),
            lambda: super(EventViewSet, self).retrieve(request, *args, **kwargs),
        )

    def filter_queryset(self, queryset):
        # Past and cancelled events stay reachable by id; only lists hide them by default.
        if self.action in ("list", "filter"):
            return super().filter_queryset(queryset)
        return queryset

    @extend_schema(
        summary="Filter events (the original's path; same filters as the list)",
        parameters=BOUNDED_PARAMETERS,
        responses=EventSerializer(many=True),
    )
    @action(detail=False, methods=["get"], url_path="filter")
    def filter(self, request: Request) -> Response:
        return self.list(request)

    def perform_create(self, serializer):
        event = services.create_event(by=self.request.user, **serializer.validated_data)
        serializer.instance = self.get_queryset().get(pk=event.pk)  # with seats_left

    def perform_update(self, serializer):
        event = services.update_event(
            event=serializer.instance, by=self.request.user, **serializer.validated_data
        )
        serializer.instance = self.get_queryset().get(pk=event.pk)  # with seats_left

    @extend_schema(responses={204: None, 409: ErrorSerializer})
    def destroy(self, request, *args, **kwargs):
        return super().destroy(request, *args, **kwargs)

    def perform_destroy(self, instance):
        services.delete_event(event=instance)
