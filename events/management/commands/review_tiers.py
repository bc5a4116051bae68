from django.core.management.base import BaseCommand, CommandError

from events.review import review_all


class Command(BaseCommand):
    help = (
        "Review every tenant's members: demotions whose validity and grace ran out, expired manual "
        "assignments, ended time-bound tiers. Resumable and safe to run twice (once per local day)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=500)

    def handle(self, *args, **options):
        def progress(tenant, done: int, total: int) -> None:
            width = 30
            filled = width * done // max(total, 1)
            self.stdout.write(f"\r{tenant.slug}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", ending="")
            self.stdout.flush()

        reviews = review_all(chunk_size=options["chunk_size"], progress=progress)
        self.stdout.write("")
        if reviews is None:
            raise CommandError("Another review is running (advisory lock held); nothing done.")
        for review in reviews:
            self.stdout.write(
                f"{review.tenant.slug} {review.run_date}: {review.members_reviewed} members reviewed, "
                f"{review.changes} tier changes"
            )
