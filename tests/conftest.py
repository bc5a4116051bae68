"""Shared fixtures: RSA keys and tokens, tenants, API clients, and the service markers.

Tests marked ``postgres`` or ``redis`` need those services. Without them they skip with the reason
printed; with ``REQUIRE_SERVICES=1`` (CI) a missing service fails the test instead.
"""

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.db import connection
from rest_framework.test import APIClient

from config.api import SCOPE_ADMIN, SCOPE_AUDIT, SCOPE_READ, SCOPE_WRITE
from members.models import Member
from tests.factories import TenantFactory, hotel_ladder

REQUIRE_SERVICES = os.environ.get("REQUIRE_SERVICES") == "1"
ISSUER = "https://iam.test"
AUDIENCE = "privilege-service-test"
ALL = f"{SCOPE_READ} {SCOPE_WRITE} {SCOPE_ADMIN} {SCOPE_AUDIT}"


def _missing_service(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _require_services(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres") and connection.vendor != "postgresql":
        _missing_service(f"needs PostgreSQL (DATABASE_URL points at {connection.vendor})")
    if request.node.get_closest_marker("redis"):
        if not django_settings.REDIS_URL:
            _missing_service("needs Redis (REDIS_URL is not set)")
        import redis

        try:
            redis.Redis.from_url(django_settings.REDIS_URL, socket_timeout=2).ping()
        except redis.RedisError as exc:
            _missing_service(f"needs Redis at REDIS_URL ({type(exc).__name__})")


# --- keys and tokens ------------------------------------------------------------------------------
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def jwt_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A trusted PEM key (kid test-key), a trusted JWKS key (kid jwks-key), and an untrusted one."""
    folder = tmp_path_factory.mktemp("jwt")
    trusted, jwks_key, rogue = _rsa_key(), _rsa_key(), _rsa_key()
    pem_path = folder / "test-key.pub.pem"
    pem_path.write_bytes(
        trusted.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(jwks_key.public_key()))
    jwk.update({"kid": "jwks-key", "alg": "RS256", "use": "sig"})
    jwks_path = folder / "jwks.json"
    jwks_path.write_text(json.dumps({"keys": [jwk]}))
    return {
        "trusted": trusted,
        "jwks": jwks_key,
        "rogue": rogue,
        "pem_path": pem_path,
        "jwks_path": jwks_path,
    }


@pytest.fixture(autouse=True)
def _jwt_settings(settings: Any, jwt_keys: dict[str, Any]) -> None:
    settings.JWT_PUBLIC_KEY_FILES = [f"test-key={jwt_keys['pem_path']}"]
    settings.JWT_JWKS_FILE = str(jwt_keys["jwks_path"])
    settings.JWT_ISSUER = ISSUER
    settings.JWT_AUDIENCE = AUDIENCE
    settings.JWT_LEEWAY_SECONDS = 30


def sign(claims: dict[str, Any], key: Any, *, kid: str | None = "test-key", alg: str = "RS256") -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def claims_for(tenant_slug: str, scope: str, /, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "svc-test",
        "tenant": tenant_slug,
        "scope": scope,
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.fixture
def make_token(jwt_keys: dict[str, Any]) -> Callable[..., str]:
    def _make(tenant_slug: str, scope: str = ALL, **overrides: Any) -> str:
        return sign(claims_for(tenant_slug, scope, **overrides), jwt_keys["trusted"])

    return _make


# --- tenants and clients --------------------------------------------------------------------------
@pytest.fixture
def tenant(db: None):
    return TenantFactory(slug="acme", name="Acme Hotels")


@pytest.fixture
def other_tenant(db: None):
    return TenantFactory(slug="globex", name="Globex Air")


@pytest.fixture
def ladder(tenant: Any) -> tuple[Any, dict[str, Any], Any]:
    """Acme's hotel ladder (``tests.factories.hotel_ladder``): (tier type, {code: tier}, Gold rule)."""
    return hotel_ladder(tenant)


@pytest.fixture
def ann(api: APIClient, ladder: Any) -> Any:
    """Member ``ann`` registered through the API: holds the default tier ``member`` of ``hotel``."""
    response = api.post("/api/v1/member", {"external_id": "ann"}, format="json")
    assert response.status_code == 201, response.content
    return Member.objects.get(tenant=ladder[0].tenant, external_id="ann")


@pytest.fixture
def api_client_for(make_token: Callable[..., str]) -> Callable[..., APIClient]:
    """``api_client_for(tenant, scope="...")``: a client that sends that tenant's token."""

    def _client(tenant: Any, scope: str = ALL, **claims: Any) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(tenant.slug, scope, **claims)}")
        return client

    return _client


@pytest.fixture
def api(tenant: Any, api_client_for: Callable[..., APIClient]) -> APIClient:
    """A client of tenant ``acme`` with every scope."""
    return api_client_for(tenant)


@pytest.fixture
def eager_tasks():
    """Run Celery tasks in-process at enqueue time (CI configures a real broker for the e2e tests)."""
    from config.celery import app

    # The app reads Django settings with the CELERY_ namespace: its keys must be set with the prefix.
    saved = (app.conf.task_always_eager, app.conf.task_eager_propagates)
    app.conf.CELERY_TASK_ALWAYS_EAGER, app.conf.CELERY_TASK_EAGER_PROPAGATES = True, True
    yield app
    app.conf.CELERY_TASK_ALWAYS_EAGER, app.conf.CELERY_TASK_EAGER_PROPAGATES = saved


@pytest.fixture(autouse=True)
def _fresh_config_cache():
    """Rolled-back tests reuse primary keys, so a snapshot cached by (tenant id, config_version) in one
    test could be served in the next: start every test with an empty cache."""
    from benefits import selectors as benefit_selectors
    from points import selectors as point_selectors
    from tiers import selectors

    selectors._SPEC_CACHE.clear()
    point_selectors._CACHE.clear()
    benefit_selectors._CATALOG_CACHE.clear()
