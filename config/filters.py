"""The API's one filter backend: django-filter, with the input rules of ``config.inputs`` applied to
every FilterSet of every list endpoint, so no filter has to remember them.

* A ``BooleanFilter`` takes ``true``, ``false``, ``1`` or ``0`` (any case); anything else is a 422
  naming the parameter (django-filter would otherwise ignore ``on`` or read ``2`` as true).
* A date-time filter refuses a UTC offset beyond ±15:59 (PostgreSQL cannot compare it) and an instant
  outside years 1–9999 in UTC: a 422 naming the parameter, not a 500.
"""

from typing import Any

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

from config import inputs


class FilterBackend(DjangoFilterBackend):
    def get_filterset_kwargs(self, request: Any, queryset: Any, view: Any) -> dict[str, Any]:
        kwargs = super().get_filterset_kwargs(request, queryset, view)
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None:
            return kwargs
        data = kwargs["data"].copy()
        errors: dict[str, list[str]] = {}
        for name, declared in filterset_class.base_filters.items():
            if not isinstance(declared, django_filters.BooleanFilter) or name not in data:
                continue
            try:
                values = [inputs.parse_boolean(raw) for raw in data.getlist(name)]
            except ValueError:
                errors[name] = [inputs.BOOLEAN_RULE]
                continue
            data.setlist(name, ["true" if value else "false" for value in values])
        if errors:
            raise ValidationError(errors)
        kwargs["data"] = data
        return kwargs

    def filter_queryset(self, request: Any, queryset: Any, view: Any) -> Any:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        errors: dict[str, list[str]] = {}
        for name, value in filterset.form.cleaned_data.items():
            for moment in inputs.datetimes_in(value):
                problem = inputs.datetime_problem(moment)
                if problem is not None:
                    errors.setdefault(name, []).append(problem)
        if errors:
            raise ValidationError(errors)
        return filterset.qs
