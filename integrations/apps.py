from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    """The IAM, Point Service and Notification adapters; they join the outbox's registry at start-up."""

    name = "integrations"

    def ready(self) -> None:
        # Imported here, not at the top: Django imports apps.py before any model can be, and the adapters
        # (like the registry) need models; ready() is the documented place for start-up registration.
        from integrations.adapters import ADAPTERS
        from outbox.registry import register

        for adapter in ADAPTERS:
            register(adapter)
