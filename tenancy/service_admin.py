"""Admin pages whose writes are the services' (STYLE.md: "Admin delegates to services").

:class:`ServiceAdmin` saves and deletes through a service (audited and validated like the API). A
service that refuses a save never becomes a 500: the whole save (object, inlines, log entry) is
rolled back and the page is rendered again from the same POST, with the service's errors on the
fields they name (:class:`ServiceForm`, :class:`ServiceFormSet`). simple-history's revert page saves
through ``save_model`` too, so reverts are service calls as well.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.core.exceptions import NON_FIELD_ERRORS, ImproperlyConfigured, ValidationError
from django.db import transaction
from django.forms import BaseForm
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from audit.services import snapshot
from config.errors import DomainError
from tenancy.admin import TenantScopedHistoryAdmin

# {form prefix ("" for the main form, "tiers-0" for an inline form, "tiers" for a formset): {field or None: messages}}
ServiceErrors = dict[str, dict[str | None, list[str]]]


def error_messages(exc: DomainError | ValidationError) -> dict[str | None, list[str]]:
    """A service's refusal as ``{field or None: messages}`` (None = not about one field)."""
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return {
                (None if field == NON_FIELD_ERRORS else field): list(msgs) for field, msgs in exc.message_dict.items()
            }
        return {None: list(exc.messages)}
    if exc.errors:
        return {field: [str(m) for m in msgs] for field, msgs in exc.errors.items()}
    return {None: [exc.detail]}


def add_errors(
    form: forms.BaseForm, errors: Mapping[str | None, Sequence[str]], aliases: Mapping[str, str] | None = None
) -> None:
    """Put errors on the fields they name (through ``aliases``), or on the form when it has no such field."""
    for field, msgs in errors.items():
        name = (aliases or {}).get(field or "", field)
        form.add_error(name if name in form.fields else None, list(msgs))


class ServiceForm(forms.ModelForm):
    """A model form that also carries the errors of a refused save of the same POST."""

    service_errors: ClassVar[ServiceErrors] = {}

    def clean(self) -> dict[str, Any]:
        super().clean()
        add_errors(self, self.service_errors.get(self.prefix or "", {}))
        return self.cleaned_data


class ServiceFormSet(BaseInlineFormSet):
    """An inline formset whose refused deletes (a tier in use) are shown above its rows."""

    service_errors: ClassVar[ServiceErrors] = {}

    def clean(self) -> None:
        super().clean()
        errors = self.service_errors.get(self.prefix or "", {})
        if errors:
            raise ValidationError([m for msgs in errors.values() for m in msgs])


REFUSALS = (DomainError, ValidationError)


class ServiceRefused(Exception):
    """A service refused part of an admin save; ``errors`` are keyed by form prefix (see tiers.forms)."""

    def __init__(self, errors: ServiceErrors):
        self.errors = errors
        super().__init__(self.text())

    def text(self) -> str:
        return " ".join(m for fields in self.errors.values() for msgs in fields.values() for m in msgs)


def refused(prefix: str | None, exc: DomainError | ValidationError) -> ServiceRefused:
    return ServiceRefused({prefix or "": error_messages(exc)})


def unchanged(obj: Any) -> bool:
    """An existing row saved with exactly its stored values (the admin saves every row it shows): a
    no-op, which gets no audit entry and does not bump the config version."""
    if obj._state.adding or obj.pk is None:
        return False
    stored = type(obj)._default_manager.filter(pk=obj.pk).first()
    return stored is not None and snapshot(stored) == snapshot(obj)


def with_service_errors(cls: type, request: HttpRequest) -> type:
    """``cls`` (a ServiceForm or ServiceFormSet) carrying the errors of this request's refused save."""
    refusal: ServiceRefused | None = getattr(request, "_service_refusal", None)
    if refusal is None:
        return cls
    return type(cls.__name__, (cls,), {"service_errors": refusal.errors})


# Typed as Any like simple-history's admin, so the admins built on this keep the loose signatures
# (formfield_for_*, get_fields) they were written against.
_ModelAdmin: Any = admin.ModelAdmin


class ServiceAdminMixin(_ModelAdmin):
    """Writes through services, refusals shown on the form: put it before a tenant-scoped admin
    (:class:`ServiceAdmin` for history-tracked models, ``TenantScopedAdmin`` for the others)."""

    form = ServiceForm

    def save_service(self, request: HttpRequest, obj: Any) -> None:
        raise ImproperlyConfigured(f"{type(self).__name__} must define save_service() (a service call).")

    def delete_service(self, request: HttpRequest, obj: Any) -> None:
        raise ImproperlyConfigured(f"{type(self).__name__} must define delete_service() (a service call).")

    # --- writes ----------------------------------------------------------------------------------
    def save_model(self, request: HttpRequest, obj: Any, form: BaseForm, change: bool) -> None:
        obj._history_user = request.user
        if change and unchanged(obj):
            return
        try:
            self.save_service(request, obj)
        except REFUSALS as exc:
            raise refused(form.prefix, exc) from exc

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        try:
            self.delete_service(request, obj)
        except REFUSALS as exc:
            raise refused(None, exc) from exc

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        """No bulk delete: deletes go one by one through the service (which may refuse them)."""
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, Any, Any, list]:
        """The service decides what may be deleted and says why not, not Django's PROTECT collector
        (whose "protected objects" list would also ask for delete permissions on read-only history)."""
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        return deleted, model_count, (set() if protected else perms_needed), []

    # --- refusals become form errors ---------------------------------------------------------------
    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        return with_service_errors(super().get_form(request, obj, change, **kwargs), request)

    def _render_refusal(self, request: HttpRequest, refusal: ServiceRefused, view: Any) -> HttpResponse:
        request._service_refusal = refusal  # type: ignore[attr-defined]
        try:
            return view()
        except ServiceRefused as again:  # the errors did not stop the save: say so and start over
            self.message_user(request, again.text(), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        def view() -> HttpResponse:
            return super(ServiceAdminMixin, self).changeform_view(request, object_id, form_url, extra_context)

        try:
            return view()  # atomic: a refusal rolls back the object, its inlines and the log entry
        except ServiceRefused as refusal:
            return self._render_refusal(request, refusal, view)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            return super().delete_view(request, object_id, extra_context)  # atomic
        except ServiceRefused as refusal:
            self.message_user(request, refusal.text(), messages.ERROR)
            opts = self.opts
            url = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[quote(object_id)],
                current_app=self.admin_site.name,
            )
            return HttpResponseRedirect(url)


class ServiceAdmin(ServiceAdminMixin, TenantScopedHistoryAdmin):
    """A history-tracked configuration admin whose writes are the services'."""

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        """simple-history's revert page: the revert is saved by ``save_model``, so by the service."""

        def view() -> HttpResponse:
            with transaction.atomic():
                return super(ServiceAdmin, self).history_form_view(request, object_id, version_id, extra_context)

        try:
            return view()
        except ServiceRefused as refusal:
            return self._render_refusal(request, refusal, view)


def _moment(value: datetime) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M") if timezone.is_aware(value) else str(value)


def window_display(start: datetime | None, end: datetime | None) -> str:
    """'2026-03-01 00:00 → 2026-04-01 00:00', 'from …', 'until …', or 'always' (list columns)."""
    if start and end:
        return f"{_moment(start)} → {_moment(end)}"
    if start:
        return f"from {_moment(start)}"
    if end:
        return f"until {_moment(end)}"
    return "always"
