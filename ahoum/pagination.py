import re

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
