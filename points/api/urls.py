from django.urls import path

from points.api import views

urlpatterns = [
    path("point-conversion/rule", views.ConversionRuleListCreateView.as_view(), name="point-conversion-rule-list"),
    path(
        "point-conversion/rule/<int:pk>",
        views.ConversionRuleDetailView.as_view(),
        name="point-conversion-rule-detail",
    ),
    path(
        "point-conversion/modifier",
        views.ModifierListCreateView.as_view(),
        name="point-conversion-modifier-list",
    ),
    path(
        "point-conversion/modifier/<int:pk>",
        views.ModifierDetailView.as_view(),
        name="point-conversion-modifier-detail",
    ),
    path("point-policy", views.PointPolicyView.as_view(), name="point-policy"),
]
