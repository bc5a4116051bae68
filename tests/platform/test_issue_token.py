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
