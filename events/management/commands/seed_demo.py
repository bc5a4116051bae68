import logging
from contextlib import contextmanager

from django.core.management.base import BaseCommand

from benefits.demo import seed_benefits
from events.demo import seed_events
from events.demo_members import seed_members
from points.demo import seed_points
from tenancy.demo import ensure_admin_login, seed_demo_tenant
from tiers.demo import seed_tiers


class Command(BaseCommand):
    help = "Load the demo program (idempotent) and print the admin login."

    def add_arguments(self, parser):
        parser.add_argument("--members", type=int, default=300, help="how many demo members (default 300)")
        parser.add_argument("--events-per-member", type=int, default=8, help="a year of events (default 8 each)")
        parser.add_argument(
            "--address", default="http://127.0.0.1:8000", help="where the server will listen, for the printed links"
        )

    def handle(self, *args, **options):
        self.stdout.write("Loading the demo program (members and a year of their events)...")
        with _quiet():
            tenant = seed_demo_tenant()
            tiers = seed_tiers(tenant)
            seed_points(tenant)
            seed_benefits(tenant, tiers)  # before the members: registration grants their tiers' benefits
            created = seed_members(tenant, tiers, count=options["members"])
            events = seed_events(tenant, per_member=options["events_per_member"])
            username, password = ensure_admin_login(tenant)
        address = options["address"].rstrip("/")
        self.stdout.write(self.style.SUCCESS(f"Demo tenant '{tenant.slug}' ready ({tenant.name})."))
        self.stdout.write(
            f"  {sum(len(t) for t in tiers.values())} tiers in {len(tiers)} tier types; "
            f"{created} members registered now ({tenant.members.count()} in all); {events} events ingested now."
        )
        self.stdout.write("")
        self.stdout.write(f"  Admin:    {address}/admin/")
        self.stdout.write(f"  Login:    {username} / {password}")
        self.stdout.write(f"  API docs: {address}/api/v1/docs")
        self.stdout.write(
            f"  Token:    DEBUG=1 .venv/bin/python manage.py issue_token --tenant {tenant.slug} "
            '--scope "privilege:read privilege:write privilege:admin privilege:audit"'
        )
        self.stdout.write("")


@contextmanager
def _quiet():
    """Seeding runs thousands of in-process tasks, each logged at INFO: keep warnings and errors only,
    so the login is not buried (``make run`` prints it just before the server starts)."""
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
