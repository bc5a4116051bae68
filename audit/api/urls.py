from django.urls import path

from audit.api import views

urlpatterns = [
    path("audit", views.AuditEntryListCreateView.as_view(), name="audit-list"),
    path("audit/<int:pk>", views.AuditEntryDetailView.as_view(), name="audit-detail"),
]
