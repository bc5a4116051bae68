from django.urls import path

from events.api import views

urlpatterns = [
    path("member/<str:member_id>/event", views.MemberEventView.as_view(), name="member-event"),
    path("events/batch", views.EventBatchView.as_view(), name="event-batch"),
    path("event/<int:pk>", views.EventDetailView.as_view(), name="event-detail"),
]
