"""``manage.py issue_token``: a token signed with the local development key that the API accepts."""

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture
def dev_key_dir(settings, tmp_path):
    settings.JWT_DEV_KEY_DIR = tmp_path / "jwt"
    settings.JWT_PRIVATE_KEY_FILE = ""
    return settings.JWT_DEV_KEY_DIR


def _issue(**options) -> str:
    from io import StringIO

    out = StringIO()
    call_command("issue_token", stdout=out, **options)
    return out.getvalue().strip()


def test_dev_token_works_when_debug_is_on(settings, dev_key_dir, tenant):
    settings.DEBUG = True
    token = _issue(tenant="acme", scope="privilege:audit", sub="ops")
    assert (dev_key_dir / "dev-private.pem").stat().st_mode & 0o777 == 0o600
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/audit").status_code == 200
    created = client.post("/api/v1/audit", {"action": "x"}, format="json").json()
    assert created["actor"] == "service:ops"


def test_dev_key_is_not_trusted_when_debug_is_off(settings, dev_key_dir, tenant):
    settings.DEBUG = True
    token = _issue(tenant="acme", scope="privilege:audit")
    settings.DEBUG = False
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/audit").status_code == 401


def test_refuses_without_a_private_key_when_debug_is_off(settings, dev_key_dir, tenant):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="No signing key"):
        _issue(tenant="acme")
    assert not dev_key_dir.exists()


def test_uses_the_configured_private_key(settings, dev_key_dir, tenant, jwt_keys, tmp_path):
    from cryptography.hazmat.primitives import serialization

    pem = jwt_keys["trusted"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = tmp_path / "signer.pem"
    path.write_bytes(pem)
    settings.DEBUG = False
    settings.JWT_PRIVATE_KEY_FILE = str(path)
    settings.JWT_PRIVATE_KEY_ID = "test-key"
    token = _issue(tenant="acme", scope="privilege:audit")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/audit").status_code == 200


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tenant": "nope"}, "No active tenant"),
        ({"tenant": "acme", "scope": "privilege:everything"}, "Unknown scope"),
        ({"tenant": "acme", "ttl": 0}, "--ttl must be positive"),
    ],
)
def test_refuses_bad_arguments(settings, dev_key_dir, tenant, options, message):
    settings.DEBUG = True
    with pytest.raises(CommandError, match=message):
        _issue(**options)


def test_without_debug_or_secret_key_it_says_what_to_configure_in_one_line(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "DATABASE_URL"}}
    env.update({"DATA_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "config.settings"})
    result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "issue_token", "--tenant", "demo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "manage.py: configuration error: SECRET_KEY is required when DEBUG is off (set DEBUG=1 for local use).\n"
    )
