from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "outbox"

    def ready(self) -> None:
        # Imported here, not at the top: Django imports apps.py before any model can be, and the
        # collector reads the outbox's models; ready() is the documented place for start-up wiring.
        from config.metrics import add_scrape_time_collector
        from outbox.metrics import OutboxBacklogCollector

        add_scrape_time_collector(OutboxBacklogCollector())
