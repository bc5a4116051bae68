from django.urls import path

from members.api import views

urlpatterns = [
    path("member", views.MemberListCreateView.as_view(), name="member-list"),
    path("member/<str:member_id>", views.MemberDetailView.as_view(), name="member-detail"),
    path("member/<str:member_id>/tier", views.MemberTierView.as_view(), name="member-tier"),
    path("member/<str:member_id>/points", views.MemberPointsView.as_view(), name="member-points"),
    path("member/<str:member_id>/benefit", views.MemberBenefitsView.as_view(), name="member-benefits"),
    path("member/<str:member_id>/points/calculate", views.MemberPointsCalculateView.as_view(), name="points-quote"),
]
