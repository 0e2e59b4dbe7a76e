"""Bearer auth on /mcp (RFC 6750 challenge, RFC 9728 metadata) and the REST audit API."""

from __future__ import annotations

import time

import httpx2
import jwt
import pytest

from conftest import mcp_client

INIT = {
    "jsonrpc": "2.0", "id": 1, "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}},
}
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def post_mcp(server, token: str | None):
    headers = dict(HEADERS)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(server.mcp_url, json=INIT, headers=headers, timeout=10)


def metadata_url(server) -> str:
    return f"{server.base}/.well-known/oauth-protected-resource"


def test_401_without_token(server):
    r = post_mcp(server, None)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url(server)}"'


def _claims(**over):
    now = int(time.time())
    c = {"sub": "agent-1", "groups": ["agents"], "iss": "tollgate-e2e", "aud": "tollgate",
         "iat": now, "nbf": now, "exp": now + 600}
    c.update(over)
    return c


@pytest.mark.parametrize("kind", ["garbage", "wrong_secret", "expired", "wrong_audience", "alg_none",
                                  "control_sub", "bidi_group", "crit"])
def test_401_with_bad_token(server, kind):
    token = {
        "garbage": lambda: "not-a-jwt",
        "wrong_secret": lambda: jwt.encode(_claims(), "some-other-secret-of-32-bytes-or-more!", algorithm="HS256"),
        "expired": lambda: jwt.encode(_claims(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200,
                                              exp=int(time.time()) - 3600), server.secret, algorithm="HS256"),
        "wrong_audience": lambda: jwt.encode(_claims(aud="someone-else"), server.secret, algorithm="HS256"),
        "alg_none": lambda: jwt.encode(_claims(), None, algorithm="none"),
        # Names that forge log lines or look like others; `crit` extensions we do not understand.
        "control_sub": lambda: jwt.encode(_claims(sub="eve\n 1 allow admin\x1b[2J"), server.secret, algorithm="HS256"),
        "bidi_group": lambda: jwt.encode(_claims(groups=["agents", "re\u202eviewers"]), server.secret, algorithm="HS256"),
        "crit": lambda: jwt.encode(_claims(), server.secret, algorithm="HS256", headers={"crit": ["x-unknown"]}),
    }[kind]()
    r = post_mcp(server, token)
    assert r.status_code == 401, r.text
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith(f'Bearer resource_metadata="{metadata_url(server)}"'), challenge
    assert 'error="invalid_token"' in challenge


def test_good_token_minted_by_hand_is_accepted(server):
    # Same claims as above with the right key: proves the 401s are about the token.
    r = post_mcp(server, jwt.encode(_claims(), server.secret, algorithm="HS256"))
    assert r.status_code == 200, r.text


def test_sdk_client_without_valid_token_fails(server):
    import anyio

    async def go():
        async with mcp_client(server.mcp_url, "not-a-jwt", "legacy") as c:
            await c.list_tools()

    with pytest.raises(BaseException):
        anyio.run(go)


def test_protected_resource_metadata(server):
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        r = httpx2.get(server.base + path, timeout=10)
        assert r.status_code == 200
        doc = r.json()
        assert doc["resource"] == server.mcp_url
        # The issuer `tollgate-e2e` is not a URL clients could run OAuth discovery
        # against: the optional field is left out rather than holding a non-URL.
        assert "authorization_servers" not in doc, doc
        assert "header" in doc["bearer_methods_supported"]


def test_health(server):
    assert httpx2.get(server.base + "/healthz", timeout=10).status_code == 200
    assert httpx2.get(server.base + "/readyz", timeout=10).status_code == 200


def test_audit_api_auth(server, agent_token, auditor_token):
    url = server.base + "/api/audit"
    assert httpx2.get(url, timeout=10).status_code == 401
    assert httpx2.get(url, headers={"Authorization": f"Bearer {agent_token}"}, timeout=10).status_code == 403
    r = httpx2.get(url, headers={"Authorization": f"Bearer {auditor_token}"}, timeout=10)
    assert r.status_code == 200 and isinstance(r.json()["events"], list)
    # Auditors read the log; they cannot use the tools.
    r = post_mcp(server, auditor_token)
    assert r.status_code == 200


def test_session_delete(server, agent_token):
    """Legacy sessions: DELETE ends the session; the id is unknown afterwards."""
    auth = {"Authorization": f"Bearer {agent_token}"}
    r = httpx2.post(server.mcp_url, json=INIT, headers={**HEADERS, **auth}, timeout=10)
    assert r.status_code == 200
    sid = r.headers["mcp-session-id"]
    h = {**HEADERS, **auth, "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
    r = httpx2.post(server.mcp_url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=h, timeout=10)
    assert r.status_code == 202
    r = httpx2.delete(server.mcp_url, headers=h, timeout=10)
    assert 200 <= r.status_code < 300, r.status_code
    r = httpx2.post(server.mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=h, timeout=10)
    assert r.status_code == 404, r.status_code


def test_foreign_origin_refused_on_mcp(server, agent_token):
    """A browser page on another origin (CSRF, DNS rebinding) cannot reach /mcp; no Origin still can."""
    auth = {"Authorization": f"Bearer {agent_token}"}
    for origin in ("https://evil.example", "null"):
        r = httpx2.post(server.mcp_url, json=INIT, headers={**HEADERS, **auth, "Origin": origin}, timeout=10)
        assert r.status_code == 403, (origin, r.status_code, r.text)
    r = httpx2.post(server.mcp_url, json=INIT, headers={**HEADERS, **auth, "Origin": server.base}, timeout=10)
    assert r.status_code == 200, r.text


def test_session_is_bound_to_its_principal(server, agent_token):
    """Another valid token cannot use someone else's Mcp-Session-Id."""
    auth = {"Authorization": f"Bearer {agent_token}"}
    r = httpx2.post(server.mcp_url, json=INIT, headers={**HEADERS, **auth}, timeout=10)
    sid = r.headers["mcp-session-id"]
    other = jwt.encode(_claims(sub="agent-2"), server.secret, algorithm="HS256")
    h = {**HEADERS, "Authorization": f"Bearer {other}", "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25"}
    r = httpx2.post(server.mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=h, timeout=10)
    assert r.status_code == 404, (r.status_code, r.text)
    assert "not opened with your identity" in r.json()["message"]
