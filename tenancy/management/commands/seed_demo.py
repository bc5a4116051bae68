from django.core.management.base import BaseCommand

from tenancy.demo import ensure_admin_login, seed_demo_tenant


class Command(BaseCommand):
    help = "Load the demo program (idempotent) and print the admin login."

    def handle(self, *args, **options):
        tenant = seed_demo_tenant()
        username, password = ensure_admin_login(tenant)
        self.stdout.write(self.style.SUCCESS(f"Demo tenant '{tenant.slug}' ready ({tenant.name})."))
        self.stdout.write("")
        self.stdout.write("  Admin:    http://127.0.0.1:8000/admin/")
        self.stdout.write(f"  Login:    {username} / {password}")
        self.stdout.write("  API docs: http://127.0.0.1:8000/api/v1/docs")
        self.stdout.write(
            f"  Token:    DEBUG=1 .venv/bin/python manage.py issue_token --tenant {tenant.slug} "
            '--scope "privilege:read privilege:write privilege:admin privilege:audit"'
        )
        self.stdout.write("")
