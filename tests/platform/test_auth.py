"""API authentication and scopes (API.md Conventions): every bad token is a 401, a missing scope a 403,
and a token only ever sees its own tenant's rows."""

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from rest_framework.test import APIClient

from audit.models import AuditEntry
from tests.conftest import ALL, claims_for, sign
from tests.helpers import assert_problem

pytestmark = pytest.mark.django_db

AUDIT_URL = "/api/v1/audit"


def _get(token: str | None, url: str = AUDIT_URL, header: str | None = None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    elif token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get(url)


def test_valid_token_is_accepted(tenant, jwt_keys):
    response = _get(sign(claims_for(tenant.slug, ALL), jwt_keys["trusted"]))
    assert response.status_code == 200
    assert response.json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_key_from_jwks_file_is_accepted(tenant, jwt_keys):
    token = sign(claims_for(tenant.slug, ALL), jwt_keys["jwks"], kid="jwks-key")
    assert _get(token).status_code == 200


def test_no_token_is_401_with_challenge(tenant):
    response = _get(None)
    body = assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="privilege"'
    assert body["detail"]


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _public_pem(jwt_keys) -> bytes:
    return (
        jwt_keys["trusted"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


BAD_TOKENS = {
    "expired": lambda k, slug: sign(claims_for(slug, ALL, exp=int(time.time()) - 120), k["trusted"]),
    "wrong_audience": lambda k, slug: sign(claims_for(slug, ALL, aud="someone-else"), k["trusted"]),
    "wrong_issuer": lambda k, slug: sign(claims_for(slug, ALL, iss="https://evil.test"), k["trusted"]),
    "unknown_kid": lambda k, slug: sign(claims_for(slug, ALL), k["trusted"], kid="nobody"),
    "no_kid": lambda k, slug: sign(claims_for(slug, ALL), k["trusted"], kid=None),
    "signed_by_untrusted_key": lambda k, slug: sign(claims_for(slug, ALL), k["rogue"]),
    "rogue_key_claiming_trusted_kid": lambda k, slug: sign(claims_for(slug, ALL), k["rogue"], kid="test-key"),
    "alg_none": lambda k, slug: f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'test-key'})}."
    f"{_b64(claims_for(slug, ALL))}.",
    "hs256_with_public_key": lambda k, slug: _hs256_with_public_key(k, slug),
    "tampered_payload": lambda k, slug: _tampered(k, slug),
    "missing_exp": lambda k, slug: sign(claims_for(slug, ALL, exp=None), k["trusted"]),
    "missing_sub": lambda k, slug: sign(claims_for(slug, ALL, sub=None), k["trusted"]),
    "missing_tenant": lambda k, slug: sign(claims_for(slug, ALL, tenant=None), k["trusted"]),
    "missing_scope": lambda k, slug: sign(claims_for(slug, ALL, scope=None), k["trusted"]),
    "unknown_tenant": lambda k, slug: sign(claims_for("no-such-tenant", ALL), k["trusted"]),
    "garbage": lambda k, slug: "not-a-jwt",
}


def _hs256_with_public_key(keys, slug: str) -> str:
    """The classic key-confusion attack: HMAC-sign with the RSA public key as the secret."""
    import hashlib
    import hmac

    header = _b64({"alg": "HS256", "typ": "JWT", "kid": "test-key"})
    payload = _b64(claims_for(slug, ALL))
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(_public_pem(keys), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _tampered(keys, slug: str) -> str:
    token = sign(claims_for(slug, "privilege:read"), keys["trusted"])
    header, _, signature = token.split(".")
    return f"{header}.{_b64(claims_for(slug, ALL))}.{signature}"


@pytest.mark.parametrize("kind", list(BAD_TOKENS))
def test_bad_token_is_401(kind, tenant, jwt_keys):
    response = _get(BAD_TOKENS[kind](jwt_keys, tenant.slug))
    assert_problem(response, 401, "invalid_token")


@pytest.mark.parametrize(
    "header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Token abc"], ids=["basic", "empty", "two", "token"]
)
def test_malformed_authorization_header_is_401(header, tenant):
    assert_problem(_get(None, header=header), 401, "invalid_token")


def test_inactive_tenant_token_is_401(tenant, make_token):
    tenant.active = False
    tenant.save()
    assert_problem(_get(make_token(tenant.slug)), 401, "invalid_token")


def test_expiry_within_leeway_is_accepted(tenant, jwt_keys):
    token = sign(claims_for(tenant.slug, ALL, exp=int(time.time()) - 10), jwt_keys["trusted"])
    assert _get(token).status_code == 200


@pytest.mark.parametrize(
    "scope",
    ["privilege:read", "privilege:write", "privilege:admin", "", "privilege:audits"],
)
def test_audit_needs_audit_scope(scope, tenant, make_token):
    assert_problem(_get(make_token(tenant.slug, scope)), 403, "insufficient_scope")


def test_scope_can_be_one_of_several(tenant, make_token):
    assert _get(make_token(tenant.slug, "privilege:read privilege:audit")).status_code == 200


def test_admin_scope_implies_write_and_read_but_not_audit():
    from config.api import effective_scopes

    assert effective_scopes({"privilege:admin"}) == {"privilege:admin", "privilege:write", "privilege:read"}
    assert effective_scopes({"privilege:write"}) == {"privilege:write", "privilege:read"}
    assert effective_scopes({"privilege:audit"}) == {"privilege:audit"}


def test_a_tenant_never_sees_another_tenants_rows(tenant, other_tenant, api_client_for):
    theirs = AuditEntry.objects.create(tenant=other_tenant, actor="system", action="secret.thing")
    mine = AuditEntry.objects.create(tenant=tenant, actor="system", action="my.thing")
    client = api_client_for(tenant)
    listing = client.get(AUDIT_URL).json()
    assert [row["id"] for row in listing["results"]] == [mine.id]
    assert_problem(client.get(f"{AUDIT_URL}/{theirs.id}"), 404, "not_found")
    assert client.get(f"{AUDIT_URL}/{mine.id}").status_code == 200


def test_key_confusion_token_is_refused_by_pyjwt_too(jwt_keys, tenant):
    """Belt and braces: the library itself refuses HS256 when we pin RS256."""
    token = BAD_TOKENS["hs256_with_public_key"](jwt_keys, tenant.slug)
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, jwt_keys["trusted"].public_key(), algorithms=["RS256"], audience="x")
