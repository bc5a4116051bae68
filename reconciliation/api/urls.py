"""Routes of the reconciliation API (API.md "Wave 2 contract")."""

from django.urls import path

from reconciliation.api import views

urlpatterns = [
    path("reconciliation/run", views.ReconciliationRunCreateView.as_view(), name="reconciliation-run-list"),
    path("reconciliation/run/<int:pk>", views.ReconciliationRunDetailView.as_view(), name="reconciliation-run-detail"),
    path(
        "reconciliation/run/<int:pk>/cancel",
        views.ReconciliationRunCancelView.as_view(),
        name="reconciliation-run-cancel",
    ),
    path(
        "reconciliation/run/<int:pk>/discrepancies",
        views.ReconciliationDiscrepanciesView.as_view(),
        name="reconciliation-run-discrepancies",
    ),
]
