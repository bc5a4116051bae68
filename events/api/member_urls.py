from django.urls import path

from events.api import member_views as views
from events.api import rollback_views

urlpatterns = [
    path("member", views.MemberListCreateView.as_view(), name="member-list"),
    path("member/<str:member_id>", views.MemberDetailView.as_view(), name="member-detail"),
    path("member/<str:member_id>/tier", views.MemberTierView.as_view(), name="member-tier"),
    path("member/<str:member_id>/export", views.MemberExportView.as_view(), name="member-export"),
    path("member/<str:member_id>/erase", views.MemberEraseView.as_view(), name="member-erase"),
    path("member/<str:member_id>/rollback/tier", rollback_views.MemberTierRollbackView.as_view(), name="rollback-tier"),
    path(
        "member/<str:member_id>/rollback/points",
        rollback_views.MemberPointsRollbackView.as_view(),
        name="rollback-points",
    ),
    path(
        "member/<str:member_id>/rollback/benefit",
        rollback_views.MemberBenefitRollbackView.as_view(),
        name="rollback-benefit",
    ),
    path(
        "member/<str:member_id>/rollback/history",
        rollback_views.MemberRollbackHistoryView.as_view(),
        name="rollback-history",
    ),
    path("member/<str:member_id>/points", views.MemberPointsView.as_view(), name="member-points"),
    path("member/<str:member_id>/benefit", views.MemberBenefitsView.as_view(), name="member-benefits"),
    path("member/<str:member_id>/benefit/apply", views.MemberBenefitApplyView.as_view(), name="member-benefits-apply"),
    path(
        "member/<str:member_id>/benefit/eligibility",
        views.MemberBenefitEligibilityView.as_view(),
        name="member-benefit-eligibility",
    ),
    path(
        "member/<str:member_id>/benefit/<int:grant_id>/use",
        views.MemberBenefitUseView.as_view(),
        name="member-benefit-use",
    ),
    path("member/<str:member_id>/points/calculate", views.MemberPointsCalculateView.as_view(), name="points-quote"),
]
