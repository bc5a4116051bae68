"""Signing tokens for local use and tests (production tokens come from the IAM)."""

import time
import uuid
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from tenancy.auth import ALGORITHM, DEV_KEY_ID, ensure_dev_private_key


def signing_key() -> tuple[str, bytes]:
    """(kid, private PEM): the configured private key, or the local development key when DEBUG is on."""
    if settings.JWT_PRIVATE_KEY_FILE:
        path = Path(settings.JWT_PRIVATE_KEY_FILE)
        return settings.JWT_PRIVATE_KEY_ID or path.stem, path.read_bytes()
    if not settings.DEBUG:
        raise ImproperlyConfigured(
            "No signing key: set JWT_PRIVATE_KEY_FILE, or DEBUG=1 to use the local development key."
        )
    return DEV_KEY_ID, ensure_dev_private_key().read_bytes()


def issue_token(*, tenant_slug: str, scopes: list[str], subject: str, ttl_seconds: int) -> str:
    kid, pem = signing_key()
    key = serialization.load_pem_private_key(pem, password=None)
    now = int(time.time())
    claims = {
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "sub": subject,
        "tenant": tenant_slug,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_seconds,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid})  # type: ignore[arg-type]
