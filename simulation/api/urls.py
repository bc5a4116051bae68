"""Routes of the simulation API (API.md "Wave 2 contract"). Each feature keeps its views in its own
module of ``simulation.api`` (validation, scenarios, ...) and adds its routes here."""

from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = []
