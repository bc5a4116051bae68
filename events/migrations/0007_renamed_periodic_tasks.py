# The relay and review tasks were renamed after their apps (events.deliver_outbox → outbox.deliver,
# tiers.review → events.review_tiers). Beat no longer re-writes its jobs from settings at start-up
# (config.beat.SeedOnceScheduler), so the jobs already seeded in django-celery-beat's table are pointed
# at the new names here, keeping whatever interval or crontab an admin gave them.

from django.db import migrations

RENAMED = {"events.deliver_outbox": "outbox.deliver", "tiers.review": "events.review_tiers"}


def forwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for old, new in RENAMED.items():
        PeriodicTask.objects.filter(task=old).update(task=new)


def backwards(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for old, new in RENAMED.items():
        PeriodicTask.objects.filter(task=new).update(task=old)


class Migration(migrations.Migration):

    dependencies = [
        ("events", "0006_member_models_moved"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
