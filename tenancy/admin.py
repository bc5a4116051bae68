"""Admin for tenants, and the mixin that scopes every admin page to the staff user's tenants."""

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from simple_history.admin import SimpleHistoryAdmin

from tenancy.models import Tenant, TenantMembership
from tenancy.selectors import tenants_for_user
from tenancy.services import save_tenant


def _is_tenant_scoped(model: type[models.Model]) -> bool:
    return any(f.name == "tenant" for f in model._meta.get_fields())


class TenantScopedMixin:
    """Limits an admin (or inline) to the staff user's tenants: list, detail, and every choice of a
    tenant or tenant-scoped foreign key. A staff user opening another tenant's object gets "not found".
    Superusers see everything."""

    tenant_field = "tenant"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        qs = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return qs
        return qs.filter(**{f"{self.tenant_field}__in": tenants_for_user(request.user)})

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser:
            related = db_field.related_model
            if related is Tenant:
                kwargs["queryset"] = tenants_for_user(request.user)
            elif _is_tenant_scoped(related):
                kwargs["queryset"] = related._default_manager.filter(tenant__in=tenants_for_user(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if not request.user.is_superuser and _is_tenant_scoped(db_field.related_model):
            kwargs["queryset"] = db_field.related_model._default_manager.filter(
                tenant__in=tenants_for_user(request.user)
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Any:
        """The tenant filter lists only the user's own tenants."""
        filters = list(super().get_list_filter(request))  # type: ignore[misc]
        return [("tenant", admin.RelatedOnlyFieldListFilter), *filters] if self.tenant_field == "tenant" else filters

    def visible_object(self, request: HttpRequest, object_id: str) -> Any:
        """The object a custom view of this admin acts on: "not found" when it is missing or another
        tenant's, "permission denied" when the user may not even view it."""
        obj = self.get_object(request, unquote(object_id))  # type: ignore[attr-defined]
        if obj is None:
            raise Http404
        if not self.has_view_permission(request, obj):  # type: ignore[attr-defined]
            raise PermissionDenied
        return obj

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial = super().get_changeform_initial_data(request)  # type: ignore[misc]
        tenants = list(tenants_for_user(request.user)[:2])
        if len(tenants) == 1 and self.tenant_field == "tenant":
            initial.setdefault("tenant", tenants[0].pk)
        return initial


class ReadOnlyAdminMixin:
    """Rows written only by services (audit, outbox, events, histories): visible, never edited here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class TenantScopedAdmin(TenantScopedMixin, admin.ModelAdmin):
    """Base for admins of tenant-owned models that are not history-tracked."""


class TenantScopedHistoryAdmin(TenantScopedMixin, SimpleHistoryAdmin):
    """History and revert pages (django-simple-history) limited to the user's tenants.

    simple-history falls back to the historical rows when an object is not in ``get_queryset`` (to
    show deleted objects), which would show another tenant's history; here that fallback is kept only
    for rows of the user's own tenants.
    """

    def _history_visible(self, request: HttpRequest, object_id: str) -> bool:
        if request.user.is_superuser:
            return True
        pk_name = self.model._meta.pk.attname
        scope = "id__in" if self.tenant_field == "pk" else f"{self.tenant_field}__in"
        return self.model.history.filter(
            **{pk_name: unquote(object_id), scope: tenants_for_user(request.user)}
        ).exists()

    def history_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        if not self._history_visible(request, object_id):
            raise Http404
        return super().history_view(request, object_id, extra_context)

    def history_form_view(
        self, request: HttpRequest, object_id: str, version_id: str, extra_context: Any = None
    ) -> HttpResponse:
        if not self._history_visible(request, object_id):
            raise Http404
        return super().history_form_view(request, object_id, version_id, extra_context)


class TenantMembershipInline(admin.TabularInline):
    model = TenantMembership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(TenantScopedHistoryAdmin):
    tenant_field = "pk"
    list_display = ["slug", "name", "timezone", "currency", "auto_enroll", "active", "config_version"]
    list_filter = ["active", "auto_enroll", "currency"]
    search_fields = ["slug", "name"]
    readonly_fields = ["config_version", "created_at"]
    inlines = [TenantMembershipInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def get_inlines(self, request: HttpRequest, obj: Any) -> list:
        return self.inlines if request.user.is_superuser else []

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        """Through ``save_tenant``: audited, ``config_version`` bumped, never written back from the form
        (also for a revert from the history page, which saves here too)."""
        obj._history_user = request.user
        save_tenant(tenant=obj, actor=request.user)
