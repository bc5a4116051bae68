from django.urls import path

from events.api import views

urlpatterns = [
    path("member/<str:member_id>/event", views.MemberEventView.as_view(), name="member-event"),
    path("member/<str:member_id>/tier/promotion", views.MemberTierPromotionView.as_view(), name="tier-promotion"),
    path("member/<str:member_id>/tier/demotion", views.MemberTierDemotionView.as_view(), name="tier-demotion"),
    path("events/batch", views.EventBatchView.as_view(), name="event-batch"),
    path("event/<int:pk>", views.EventDetailView.as_view(), name="event-detail"),
]
