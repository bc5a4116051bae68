"""Routes of the simulation API (API.md "Wave 2 contract"). Each feature keeps its views in its own
module of ``simulation.api`` (validation, scenarios, ...) and adds its routes here."""

from django.urls import URLPattern, URLResolver, path

from simulation.api import member, runs, scenarios, validation

urlpatterns: list[URLPattern | URLResolver] = [
    path("simulation/scenario", scenarios.ScenarioListCreateView.as_view(), name="simulation-scenario-list"),
    path("simulation/scenario/<int:pk>", scenarios.ScenarioDetailView.as_view(), name="simulation-scenario-detail"),
    path(
        "simulation/scenario/<int:pk>/publish",
        scenarios.ScenarioPublishView.as_view(),
        name="simulation-scenario-publish",
    ),
    path("simulation/validate", validation.ValidationView.as_view(), name="simulation-validate"),
    path("simulation/run", runs.RunCreateView.as_view(), name="simulation-run-list"),
    path("simulation/run/<int:pk>", runs.RunDetailView.as_view(), name="simulation-run-detail"),
    path("simulation/run/<int:pk>/members", runs.RunMembersView.as_view(), name="simulation-run-members"),
    path("simulation/run/<int:pk>/cancel", runs.RunCancelView.as_view(), name="simulation-run-cancel"),
    path("simulation/member/<str:member_id>", member.MemberSimulationView.as_view(), name="simulation-member"),
]
