"""The Celery application. Workers: ``celery -A config worker -Q events,outbox,sync,maintenance``;
the scheduler: ``celery -A config beat`` (one instance; periodic jobs also take an advisory lock)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

from config.tracing import bind_request_id

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("privilege")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect
def _bind_correlation_id(task_id: str | None = None, task=None, **_: object) -> None:
    """Log lines of a task carry the correlation id it was enqueued with (or the task id)."""
    headers = getattr(getattr(task, "request", None), "headers", None) or {}
    bind_request_id(str(headers.get("correlation_id") or task_id or ""))


@task_postrun.connect
def _unbind_correlation_id(**_: object) -> None:
    """A task's id must not leak into whatever runs next in the same process (eager tasks run inside
    a request or a test; a worker runs the next task)."""
    bind_request_id("")
