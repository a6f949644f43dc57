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
    """Counts the matches only as far as `count_limit`: a page costs what it holds.

    Counting 100,000 matching events on every page would cost more than the page. The count
    is exact up to the limit; beyond it, `count` is the limit and `exact` is false.
    """

    def __init__(self, object_list, per_page, *, count_limit: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.count_limit = count_limit

    @cached_property
    def counted(self) -> int:
        # One row past the limit tells "more" from "exactly that many". Only the keys: the
        # page's annotations (a search's rank) and its order are not needed to count.
        return self.object_list.order_by().values("pk")[: self.count_limit + 1].count()

    @cached_property
    def count(self) -> int:
        return min(self.counted, self.count_limit)

    @property
    def exact(self) -> bool:
        return self.counted <= self.count_limit


class CappedCountPagination(PageNumberPagination):
    """PageNumberPagination whose count looks only `LOOKAHEAD_PAGES` pages past the one asked
    for (`CappedCountPaginator`), saying in `count_exact` whether it found the end.

    Page 1 counts at most 11 pages of matches, page 200 up to page 210: the count costs what
    the page's own offset costs, however many events match, and `next` is always right. `last`
    counts up to `LAST_PAGE_LIMIT` matches.
    """

    LOOKAHEAD_PAGES = 10
    LAST_PAGE_LIMIT = 10_000

    def paginate_queryset(self, queryset, request, view=None):
        page_size = self.get_page_size(request)
        raw = request.query_params.get(self.page_query_param, "1")
        if raw in self.last_page_strings:
            self.count_limit = self.LAST_PAGE_LIMIT
        else:
            number = int(raw) if re.fullmatch(r"[0-9]{1,9}", raw) else 1  # else a 400 below
            self.count_limit = (max(number, 1) + self.LOOKAHEAD_PAGES) * (page_size or 1)
        return super().paginate_queryset(queryset, request, view)

    def django_paginator_class(self, object_list, per_page):
        return CappedCountPaginator(object_list, per_page, count_limit=self.count_limit)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        response.data["count_exact"] = self.page.paginator.exact
        return response

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        schema["required"] = [*schema.get("required", []), "count_exact"]
        schema["properties"]["count_exact"] = {
            "type": "boolean",
            "description": f"False when more events match than were counted: the count "
            f"looks {self.LOOKAHEAD_PAGES} pages past the page asked for. `count` is then a "
            "lower bound, and `next` leads on.",
        }
        return schema
