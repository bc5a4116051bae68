from django.urls import path

from benefits.api import views

urlpatterns = [
    path("benefit", views.BenefitListCreateView.as_view(), name="benefit-list"),
    path("benefit/<int:pk>", views.BenefitDetailView.as_view(), name="benefit-detail"),
    path("benefit/<int:pk>/copy", views.BenefitCopyView.as_view(), name="benefit-copy"),
    path("tier/<int:tier_id>/benefit", views.TierBenefitListCreateView.as_view(), name="tier-benefit-list"),
    path(
        "tier/<int:tier_id>/benefit/<int:benefit_id>",
        views.TierBenefitDetailView.as_view(),
        name="tier-benefit-detail",
    ),
    path(
        "campaign/<str:campaign_code>/benefit",
        views.CampaignBenefitListCreateView.as_view(),
        name="campaign-benefit-list",
    ),
    path(
        "campaign/<str:campaign_code>/benefit/<int:benefit_id>",
        views.CampaignBenefitDetailView.as_view(),
        name="campaign-benefit-detail",
    ),
    path("event/code", views.EventCodeListCreateView.as_view(), name="event-code-list"),
    path("event/code/<int:pk>", views.EventCodeDetailView.as_view(), name="event-code-detail"),
]
