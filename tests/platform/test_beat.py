"""Beat seeds the periodic jobs of settings once: an admin's edit in Periodic tasks survives a beat
restart, a job deleted by nobody is still created, and jobs seeded under a task's old name follow it."""

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.beat import SeedOnceScheduler
from config.celery import app

# transaction=True: the scheduler manages its own connection (on PostgreSQL it refuses a test's atomic block).
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_beat_restart_keeps_the_admins_edits_and_seeds_what_is_missing():
    SeedOnceScheduler(app=app)
    seeded = PeriodicTask.objects.get(name="deliver-outbox")
    assert (seeded.task, seeded.interval.every, seeded.interval.period, seeded.enabled) == (
        "outbox.deliver",
        5,
        "seconds",
        True,
    )
    slower = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(pk=seeded.pk).update(interval=slower, enabled=False)
    PeriodicTask.objects.filter(name="sweep-received-events").delete()

    SeedOnceScheduler(app=app)

    kept = PeriodicTask.objects.get(name="deliver-outbox")
    assert (kept.pk, kept.interval_id, kept.enabled) == (seeded.pk, slower.pk, False)
    assert PeriodicTask.objects.get(name="sweep-received-events").task == "events.sweep_received"


def test_jobs_seeded_under_a_tasks_old_name_follow_the_rename():
    executor = MigrationExecutor(connection)
    migration = executor.loader.get_migration("events", "0007_renamed_periodic_tasks")
    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="deliver-outbox", task="events.deliver_outbox", interval=every)
    PeriodicTask.objects.create(name="review-tiers", task="tiers.review", interval=every)
    migration.operations[0].code(apps, None)
    assert dict(PeriodicTask.objects.values_list("name", "task")) == {
        "deliver-outbox": "outbox.deliver",
        "review-tiers": "events.review_tiers",
    }
