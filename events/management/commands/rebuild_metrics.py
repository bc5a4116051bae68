from django.core.management.base import BaseCommand, CommandError

from events.metrics_rebuild import rebuild_metrics
from members.models import Member
from tenancy.models import Tenant


class Command(BaseCommand):
    help = "Recompute members' daily metric aggregates from the event log (the source of truth)."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument("--member", action="append", default=[], help="external id (repeatable; default all)")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        members = Member.objects.filter(tenant=tenant).order_by("pk")
        if options["member"]:
            members = members.filter(external_id__in=options["member"])
        count = 0
        for member in members.iterator(chunk_size=500):
            rebuild_metrics(tenant=tenant, member=member)
            count += 1
        self.stdout.write(f"Rebuilt the daily metrics of {count} members of {tenant.slug}.")
