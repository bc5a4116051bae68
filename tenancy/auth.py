"""API authentication: RS256 JWTs verified against configured public keys.

Rules (API.md): the algorithm is fixed to RS256 and never taken from the token; the header's ``kid``
selects the key; ``iss``, ``aud``, ``exp`` and ``sub`` are required, with a small leeway for clock skew;
the ``tenant`` claim (a tenant slug) decides which tenant the caller acts for; ``scope`` is a
space-separated list. Anything else is a 401.

Keys: ``JWT_PUBLIC_KEY_FILES`` (entries ``kid=path``, or a bare path whose file name without extension
is the kid) and ``JWT_JWKS_FILE``. With ``DEBUG`` on, the local development key that
``manage.py issue_token`` creates under ``DATA_DIR/jwt`` is trusted too (kid ``dev``).
"""

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from tenancy.models import Tenant
from tenancy.selectors import tenant_by_slug

DEV_KEY_ID = "dev"
ALGORITHM = "RS256"


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: ``request.auth`` in every API view."""

    subject: str
    tenant: Tenant
    scopes: frozenset[str]
    token_id: str | None


@dataclass(frozen=True)
class ServicePrincipal:
    """``request.user`` for token-authenticated calls: a calling service or user, never a Django user."""

    subject: str
    tenant_slug: str
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False

    @property
    def pk(self) -> str:
        return f"{self.tenant_slug}:{self.subject}"

    def __str__(self) -> str:
        return f"service:{self.subject}"


# --- keys -----------------------------------------------------------------------------------------
def dev_private_key_path() -> Path:
    return Path(settings.JWT_DEV_KEY_DIR) / "dev-private.pem"


def ensure_dev_private_key() -> Path:
    """Create the local development signing key on first use (mode 0600) and return its path."""
    path = dev_private_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
    return path


def _key_sources() -> tuple[tuple[str, str, float], ...]:
    """(kind, path, mtime) of every configured key file; the mtime makes the cache notice rotation."""
    sources: list[tuple[str, str, float]] = []
    for entry in settings.JWT_PUBLIC_KEY_FILES:
        kid, sep, path = entry.partition("=")
        if not sep:
            path, kid = entry, Path(entry).stem
        sources.append((f"pem:{kid}", path, _mtime(path)))
    if settings.JWT_JWKS_FILE:
        sources.append(("jwks", settings.JWT_JWKS_FILE, _mtime(settings.JWT_JWKS_FILE)))
    if settings.DEBUG and dev_private_key_path().exists():
        sources.append((f"dev:{DEV_KEY_ID}", str(dev_private_key_path()), _mtime(str(dev_private_key_path()))))
    return tuple(sources)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return -1.0


@functools.lru_cache(maxsize=8)
def _load_keys(sources: tuple[tuple[str, str, float], ...]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for kind, path, mtime in sources:
        if mtime < 0:
            continue  # a missing file verifies nothing; the health of key files is a deploy concern
        data = Path(path).read_bytes()
        if kind == "jwks":
            for jwk in jwt.PyJWKSet.from_json(data.decode()).keys:
                if jwk.key_type == "RSA" and jwk.key_id and jwk.algorithm_name in (ALGORITHM, None):
                    keys[jwk.key_id] = jwk.key
        elif kind.startswith("dev:"):
            private = serialization.load_pem_private_key(data, password=None)
            keys[kind.partition(":")[2]] = private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
            if not isinstance(public, rsa.RSAPublicKey):
                continue
            keys[kind.partition(":")[2]] = public
    return keys


def verification_keys() -> dict[str, Any]:
    """kid → RSA public key, from every configured source."""
    return _load_keys(_key_sources())


# --- verification ---------------------------------------------------------------------------------
def decode_token(token: str) -> dict[str, Any]:
    """Verify a token's signature and registered claims; raise ``AuthenticationFailed`` otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise exceptions.AuthenticationFailed("The token is malformed.") from exc
    if header.get("alg") != ALGORITHM:
        raise exceptions.AuthenticationFailed("Only RS256-signed tokens are accepted.")
    key = verification_keys().get(header.get("kid") or "")
    if key is None:
        raise exceptions.AuthenticationFailed("The token's signing key (kid) is not known.")
    try:
        return jwt.decode(
            token,
            key=key,
            algorithms=[ALGORITHM],
            audience=settings.JWT_AUDIENCE,
            issuer=settings.JWT_ISSUER,
            leeway=settings.JWT_LEEWAY_SECONDS,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise exceptions.AuthenticationFailed("The token has expired.") from exc
    except jwt.InvalidAudienceError as exc:
        raise exceptions.AuthenticationFailed("The token is not meant for this service (aud).") from exc
    except jwt.InvalidIssuerError as exc:
        raise exceptions.AuthenticationFailed("The token's issuer is not trusted (iss).") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise exceptions.AuthenticationFailed(f"The token lacks the '{exc.claim}' claim.") from exc
    except jwt.InvalidTokenError as exc:
        raise exceptions.AuthenticationFailed("The token's signature or claims are invalid.") from exc


class JWTAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <JWT>``. No header → anonymous (the permission check answers 401)."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, TokenClaims] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or " " in token.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <token>'.")
        claims = decode_token(token.strip())
        slug, scope = claims.get("tenant"), claims.get("scope")
        if not isinstance(slug, str) or not slug:
            raise exceptions.AuthenticationFailed("The token lacks the 'tenant' claim.")
        if not isinstance(scope, str):
            raise exceptions.AuthenticationFailed("The token lacks the 'scope' claim.")
        tenant = tenant_by_slug(slug)
        if tenant is None:
            raise exceptions.AuthenticationFailed("The token's tenant is unknown or inactive.")
        subject = str(claims["sub"])
        return (
            ServicePrincipal(subject=subject, tenant_slug=tenant.slug),
            TokenClaims(
                subject=subject,
                tenant=tenant,
                scopes=frozenset(scope.split()),
                token_id=claims.get("jti"),
            ),
        )

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="privilege"'
