from django.urls import path

from events.api import redeem, views

urlpatterns = [
    path("member/<str:member_id>/event", views.MemberEventView.as_view(), name="member-event"),
    path("member/<str:member_id>/tier/promotion", views.MemberTierPromotionView.as_view(), name="tier-promotion"),
    path("member/<str:member_id>/tier/demotion", views.MemberTierDemotionView.as_view(), name="tier-demotion"),
    path("member/<str:member_id>/event-code/redeem", redeem.EventCodeRedeemView.as_view(), name="event-code-redeem"),
    path("events/batch", views.EventBatchView.as_view(), name="event-batch"),
    path("event/<int:pk>", views.EventDetailView.as_view(), name="event-detail"),
    path("event/publish", views.PublishEventView.as_view(), name="event-publish"),
    path("webhook/subscription", views.WebhookSubscriptionListCreateView.as_view(), name="webhook-subscription-list"),
    path(
        "webhook/subscription/<int:pk>",
        views.WebhookSubscriptionDetailView.as_view(),
        name="webhook-subscription-detail",
    ),
    path(
        "webhook/subscription/<int:pk>/rotate-secret",
        views.WebhookSubscriptionRotateSecretView.as_view(),
        name="webhook-subscription-rotate-secret",
    ),
    path("outbox", views.OutboxMessageListView.as_view(), name="outbox-list"),
    path("outbox/<uuid:pk>", views.OutboxMessageDetailView.as_view(), name="outbox-detail"),
    path("outbox/<uuid:pk>/replay", views.OutboxMessageReplayView.as_view(), name="outbox-replay"),
]
