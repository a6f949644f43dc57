import re
from functools import cached_property

from django.core.paginator import Paginator
from rest_framework import pagination
from rest_framework.exceptions import ValidationError


class PageNumberPagination(pagination.PageNumberPagination):
    """`?page=N&page_size=M` (M capped at 100); bodies carry count, next, previous, results.

    A malformed `page_size` is a 400 naming it (DRF would silently use the default); a page
    past the end is DRF's 404.
    """

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (a 500).
        if raw is not None and (not re.fullmatch(r"[0-9]{1,6}", raw) or int(raw) < 1):
            raise ValidationError({self.page_size_query_param: ["Use a whole number from 1."]})
        return super().get_page_size(request)

    def get_page_number(self, request, paginator):
        # DRF reads a blank `page` as 1 and a word as "Invalid page" (404): a malformed page
        # number is a 400 naming it, as every other parameter.
        raw = request.query_params.get(self.page_query_param)
        malformed = raw is not None and not re.fullmatch(r"[0-9]{1,9}", raw)
        if malformed and raw not in self.last_page_strings:
            raise ValidationError({self.page_query_param: ["Use a page number from 1."]})
        return super().get_page_number(request, paginator)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] |= {"minimum": 1}
                parameter["description"] += " At most 100; larger values are capped."
            if parameter["name"] == self.page_query_param:
                parameter["schema"] |= {"minimum": 1}
        return parameters


class CappedCountPaginator(Paginator):
    """Counts the matches only up to `CAP`: a page costs what it holds, not what matches.

    Counting 100,000 matching events on every page would cost more than the page. Up to CAP
    the count is exact; beyond, `count` is CAP, `count_exact` is false, and the pages reach as
    far as CAP rows (narrow the filters for more).
    """

    CAP = 10_000

    @cached_property
    def counted(self) -> int:
        # One row past the cap tells "more" from "exactly CAP"; the ordering is not needed.
        return self.object_list.order_by()[: self.CAP + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.CAP)

    @property
    def exact(self) -> bool:
        return self.counted <= self.CAP


class CappedCountPagination(PageNumberPagination):
    """PageNumberPagination with a bounded count (`CappedCountPaginator`) and `count_exact`."""

    django_paginator_class = CappedCountPaginator

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["count_exact"] = self.page.paginator.exact
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["required"] = [*schema.get("required", []), "count_exact"]
        schema["properties"]["count_exact"] = {
            "type": "boolean",
            "description": f"False when more than {CappedCountPaginator.CAP} events match: "
            "`count` is then that cap, and pages reach that far.",
        }
        return schema
