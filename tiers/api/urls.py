from django.urls import path

from tiers.api import views

urlpatterns = [
    path("tier/type", views.TierTypeListCreateView.as_view(), name="tier-type-list"),
    path("tier/type/<int:pk>", views.TierTypeDetailView.as_view(), name="tier-type-detail"),
    path("tier/type/<int:type_id>/tier", views.TierTypeTierListCreateView.as_view(), name="tier-type-tier-list"),
    path("tier", views.TierListView.as_view(), name="tier-list"),
    path("tier/<int:pk>", views.TierDetailView.as_view(), name="tier-detail"),
    path("promotion/rule", views.PromotionRuleListCreateView.as_view(), name="promotion-rule-list"),
    path("promotion/rule/<int:pk>", views.PromotionRuleDetailView.as_view(), name="promotion-rule-detail"),
]
