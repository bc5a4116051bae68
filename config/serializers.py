"""Serializer pieces shared by every app's API.

Optional codes and emails: the database keeps ``""`` for "none" (a blank ``SlugField`` / ``EmailField``),
but ``""`` is not a slug nor an email address, so a schema that says ``pattern``/``format: email`` would
lie about it. The API says *none* as ``null`` instead: responses carry ``null``, requests may send
``null`` or ``""`` (both stored as ``""``). Every ``ApiModelSerializer`` maps such model fields to the
``Optional*`` fields below, and ``config.schema`` documents them (nullable; ``""`` allowed in requests).
"""

from typing import Any

from django.db import models
from rest_framework import serializers


class OptionalTextMixin:
    """``""`` (none) is ``null`` out; ``null`` or ``""`` in, stored as ``""``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["allow_blank"] = True
        kwargs["allow_null"] = True
        super().__init__(**kwargs)

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        if data is None:
            return True, ""
        return super().validate_empty_values(data)  # type: ignore[misc]

    def to_representation(self, value: Any) -> Any:
        if value in (None, ""):
            return None
        return super().to_representation(value)  # type: ignore[misc]


class OptionalSlugField(OptionalTextMixin, serializers.SlugField):
    pass


class OptionalEmailField(OptionalTextMixin, serializers.EmailField):
    pass


_OPTIONAL: dict[type[serializers.Field], type[serializers.Field]] = {
    serializers.SlugField: OptionalSlugField,
    serializers.EmailField: OptionalEmailField,
}


class ApiModelSerializer(serializers.ModelSerializer):
    """A ``ModelSerializer`` whose blank-able slug and email columns read ``null`` when empty."""

    def build_standard_field(self, field_name: str, model_field: models.Field) -> tuple[type, dict[str, Any]]:
        field_class, field_kwargs = super().build_standard_field(field_name, model_field)
        optional = _OPTIONAL.get(field_class)
        if optional is not None and model_field.blank:
            field_kwargs.pop("allow_blank", None)
            field_kwargs.pop("allow_null", None)
            return optional, field_kwargs
        return field_class, field_kwargs
