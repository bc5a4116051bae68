from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from config.api import ALL_SCOPES
from tenancy.selectors import tenant_by_slug
from tenancy.tokens import issue_token


class Command(BaseCommand):
    help = "Print an API token for a tenant, signed with the configured (or local development) key."

    def add_arguments(self, parser):
        parser.add_argument("--tenant", required=True, help="tenant slug")
        parser.add_argument(
            "--scope", default="privilege:read", help='space-separated, e.g. "privilege:read privilege:write"'
        )
        parser.add_argument("--sub", default="cli", help="subject (the calling service or user)")
        parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")

    def handle(self, *args, **options):
        if tenant_by_slug(options["tenant"]) is None:
            raise CommandError(f"No active tenant with slug {options['tenant']!r}.")
        scopes = options["scope"].split()
        unknown = sorted(set(scopes) - set(ALL_SCOPES))
        if unknown:
            raise CommandError(f"Unknown scope(s): {', '.join(unknown)}. Known: {', '.join(ALL_SCOPES)}.")
        if options["ttl"] <= 0:
            raise CommandError("--ttl must be positive.")
        try:
            token = issue_token(
                tenant_slug=options["tenant"], scopes=scopes, subject=options["sub"], ttl_seconds=options["ttl"]
            )
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(token)
