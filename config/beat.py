"""The beat scheduler: django-celery-beat's ``DatabaseScheduler``, except that the periodic jobs of
``CELERY_BEAT_SCHEDULE`` are only *seeded*: created when no job of that name exists, never written over.
The stock scheduler re-writes them from settings at every beat start, which silently reverted an admin's
edit (interval, crontab, enabled) in Periodic tasks; here the admin's table is the truth once seeded.
A renamed task is carried over by a data migration (``events.0007``), not by a beat start."""

from typing import Any

from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler


class SeedOnceScheduler(DatabaseScheduler):
    def update_from_dict(self, mapping: dict[str, Any]) -> None:
        existing = set(PeriodicTask.objects.filter(name__in=list(mapping)).values_list("name", flat=True))
        super().update_from_dict({name: entry for name, entry in mapping.items() if name not in existing})
