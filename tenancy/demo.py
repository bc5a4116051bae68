"""The demo tenant and admin login used by ``manage.py seed_demo`` (``make run``)."""

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from tenancy.models import Tenant, TenantMembership

DEMO_SLUG = "demo"
ADMIN_USERNAME = "admin"


def admin_password_file() -> Path:
    return Path(settings.DATA_DIR) / "admin-password.txt"


@transaction.atomic
def seed_demo_tenant() -> Tenant:
    tenant, _ = Tenant.objects.get_or_create(
        slug=DEMO_SLUG,
        defaults={
            "name": "Demo Hotels & Resorts",
            "timezone": "Asia/Bangkok",
            "currency": "USD",
            "auto_enroll": False,
            "max_event_age_days": 400,
        },
    )
    return tenant


@transaction.atomic
def ensure_admin_login(tenant: Tenant) -> tuple[str, str]:
    """A superuser ``admin`` whose password is generated once and kept (0600) under DATA_DIR."""
    path = admin_password_file()
    password = path.read_text().strip() if path.exists() else ""
    user_model = get_user_model()
    user = user_model.objects.filter(username=ADMIN_USERNAME).first()
    if user is None or not password or not user.check_password(password):
        password = password or secrets.token_urlsafe(12)
        if user is None:
            user = user_model.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
        else:
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            user.save()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(password + "\n")
        path.chmod(0o600)
    TenantMembership.objects.get_or_create(user=user, tenant=tenant)
    return ADMIN_USERNAME, password
