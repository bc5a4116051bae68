"""URL map. Every API route lives under /api/v1 and is declared in its app's ``api/urls.py``."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config import ops, views

api_v1 = [
    path("health", ops.HealthView.as_view(), name="health"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("redoc", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("audit.api.urls")),
    path("", include("tiers.api.urls")),
    path("", include("events.api.member_urls")),
    path("", include("events.api.urls")),
    path("", include("events.api.notifications")),
    path("", include("points.api.urls")),
    path("", include("benefits.api.urls")),
    path("", include("simulation.api.urls")),
    path("", include("reconciliation.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("metrics", ops.metrics_view, name="metrics"),
    path("", views.home, name="home"),
]

handler400 = views.bad_request
handler403 = views.permission_denied
handler404 = views.page_not_found
handler500 = views.server_error
