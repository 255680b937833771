"""Who may call the API: tokens, OIDC JWTs against a JWKS on loopback, roles, limits, records.

The app is the real one; the credentials are real (random tokens, RSA-signed JWTs checked
against keys served over HTTP), so each refusal here is the one a caller would get.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.exceptions import StarletteDeprecationWarning

from selfheal.api import create_app
from selfheal.api.auth import (
    Authenticator,
    OidcSettings,
    OidcVerifier,
    TokenTable,
    parse_token_file,
    token_digest,
)
from selfheal.api.guard import OPEN_PATHS, RateLimit
from selfheal.domain.errors import ConfigError
from selfheal.lab.alert_sender import alert, notification

from support import ApiCallers

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from fastapi.testclient import TestClient

CALLERS = ApiCallers()
ALERT_BODY = notification([alert("X", {"pod": "a"}, starts_at=1_796_000_000.0)])


class Everything:
    """Every port the app can be given, recording what reaches it."""

    def __init__(self) -> None:
        self.batches: list[Any] = []
        self.verdicts: list[tuple[str, str]] = []
        self.requests: list[dict[str, Any]] = []

    def receive(self, batch: Any) -> None:
        self.batches.append(batch)

    def write(self, samples: Any) -> None:
        del samples

    def give_verdict(
        self, incident_id: str, *, approve: bool, by: str, reason: str, source: str
    ) -> None:
        del approve, reason, source
        self.verdicts.append((incident_id, by))

    def record_request(self, **request: Any) -> None:
        self.requests.append(request)

    def reset_breaker(self, **_: Any) -> dict[str, Any]:
        return {"reset": True, "failures": 2, "opens_at": 2}

    def list_incidents(self, **_: Any) -> list[dict[str, Any]]:
        return []

    def incident(self, incident_id: str) -> dict[str, Any] | None:
        return {"id": incident_id}

    def incident_audit(self, incident_id: str) -> list[dict[str, Any]] | None:
        del incident_id
        return []

    def audit(self, **_: Any) -> list[dict[str, Any]]:
        return []


def app_for(ports: Everything, authenticator: Authenticator, **options: Any) -> Any:
    return create_app(
        alerts=ports,
        samples=ports,
        approvals=ports,
        incidents=ports,
        guardrails=ports,
        requests=ports,
        authenticator=authenticator,
        **options,
    )


@pytest.fixture
def ports() -> Everything:
    return Everything()


@pytest.fixture
def client(ports: Everything) -> Iterator[TestClient]:
    with TestClient(app_for(ports, CALLERS.authenticator)) as test_client:
        yield test_client


def test_every_route_but_the_health_checks_needs_a_credential(client: TestClient) -> None:
    """Each route the app serves, and paths it does not, answer 401 to an anonymous caller."""
    app = client.app
    paths = {route.path for route in app.routes if hasattr(route, "methods")}  # type: ignore[attr-defined]
    assert paths >= OPEN_PATHS
    for route in app.routes:  # type: ignore[attr-defined]
        for method in getattr(route, "methods", ()):
            path = route.path.replace("{incident_id}", "inc-1")
            answer = client.request(method, path)
            expected = 200 if route.path in OPEN_PATHS else 401
            assert answer.status_code == expected, (method, path, answer.text)
    assert client.get("/no/such/route").status_code == 401
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/openapi.json", headers=CALLERS.headers("dashboard")).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "caller", "role"),
    [
        ("POST", "/api/v1/alerts", "dashboard", "sender"),
        ("POST", "/api/v1/alerts", "alice", "sender"),
        ("POST", "/api/v1/write", "root", "sender"),
        ("POST", "/api/v1/incidents/inc-1/approve", "alertmanager", "approver"),
        ("POST", "/api/v1/incidents/inc-1/deny", "dashboard", "approver"),
        ("GET", "/api/v1/incidents", "alertmanager", "viewer"),
        ("GET", "/api/v1/audit", "alertmanager", "viewer"),
        ("POST", "/api/v1/guardrails/reset", "alice", "admin"),
    ],
)
def test_a_caller_without_the_routes_role_gets_403_naming_it(
    client: TestClient, ports: Everything, *, method: str, path: str, caller: str, role: str
) -> None:
    answer = client.request(method, path, json={}, headers=CALLERS.headers(caller))
    assert answer.status_code == 403
    assert f"lacks the {role!r} role" in answer.json()["error"]
    assert ports.batches == []
    assert ports.verdicts == []


def test_roles_that_include_others_are_enough(client: TestClient) -> None:
    """Admin and approver can read; admin can approve; a sender's token reads nothing."""
    for caller in ("dashboard", "alice", "root"):
        assert client.get("/api/v1/incidents", headers=CALLERS.headers(caller)).status_code == 200
    approved = client.post(
        "/api/v1/incidents/inc-1/approve", json={}, headers=CALLERS.headers("root")
    )
    assert approved.status_code == 200


def test_alerts_carry_the_senders_identity_not_the_bodys(
    client: TestClient, ports: Everything
) -> None:
    body = json.loads(json.dumps(ALERT_BODY))
    body["alerts"][0]["labels"]["sender"] = "someone-else"
    answer = client.post("/api/v1/alerts", json=body, headers=CALLERS.headers("alertmanager"))
    assert answer.status_code == 200, answer.text
    [batch] = ports.batches
    assert batch.alerts[0].sender == "alertmanager"


def test_basic_auth_is_the_tokens_identity_and_the_token(client: TestClient) -> None:
    token = CALLERS.tokens["alertmanager"]

    def basic(user: str, password: str) -> dict[str, str]:
        encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"authorization": f"Basic {encoded}"}

    assert (
        client.post(
            "/api/v1/alerts", json=ALERT_BODY, headers=basic("alertmanager", token)
        ).status_code
        == 200
    )
    assert (
        client.post("/api/v1/alerts", json=ALERT_BODY, headers=basic("alice", token)).status_code
        == 401
    )
    assert (
        client.post(
            "/api/v1/alerts", json=ALERT_BODY, headers=basic("alertmanager", "x")
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/api/v1/alerts", json=ALERT_BODY, headers={"authorization": "Basic %%%"}
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/api/v1/alerts", json=ALERT_BODY, headers={"authorization": "Digest x"}
        ).status_code
        == 401
    )


def test_write_requests_are_recorded_with_who_where_and_the_answer(
    client: TestClient, ports: Everything
) -> None:
    client.post("/api/v1/alerts", json=ALERT_BODY, headers=CALLERS.headers("alertmanager"))
    client.post("/api/v1/alerts", json=ALERT_BODY)
    client.post("/api/v1/incidents/inc-1/approve", json={}, headers=CALLERS.headers("dashboard"))
    client.get("/api/v1/incidents", headers=CALLERS.headers("dashboard"))  # reads: not recorded
    sent, anonymous, refused = ports.requests
    assert sent["identity"] == "alertmanager"
    assert sent["roles"] == ("sender",)
    assert (sent["method"], sent["route"], sent["status"]) == ("POST", "/api/v1/alerts", 200)
    assert sent["source"].startswith("testclient")
    assert (anonymous["identity"], anonymous["status"]) == (None, 401)
    assert (refused["identity"], refused["status"]) == ("dashboard", 403)


def test_a_caller_over_its_write_budget_gets_429_with_retry_after(ports: Everything) -> None:
    app = app_for(ports, CALLERS.authenticator, rate_limit=RateLimit(per_second=0.5, burst=3))
    with TestClient(app, headers=CALLERS.headers("alertmanager")) as test_client:
        answers = [test_client.post("/api/v1/alerts", json=ALERT_BODY) for _ in range(5)]
        other = test_client.post(
            "/api/v1/incidents/inc-1/approve", json={}, headers=CALLERS.headers("alice")
        )
    assert [answer.status_code for answer in answers] == [200, 200, 200, 429, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert other.status_code == 200, "each caller has a budget of its own"
    assert len(ports.batches) == 3
    assert [request["status"] for request in ports.requests].count(429) == 0


def test_guessing_tokens_is_rate_limited_by_address(ports: Everything) -> None:
    app = app_for(ports, CALLERS.authenticator, rate_limit=RateLimit(per_second=0.1, burst=2))
    with TestClient(app) as test_client:
        answers = [
            test_client.get("/api/v1/incidents", headers={"authorization": f"Bearer guess-{n}"})
            for n in range(4)
        ]
    assert [answer.status_code for answer in answers] == [401, 401, 429, 429]


# ---- token files --------------------------------------------------------------------------
def test_a_token_file_names_identities_roles_and_digests(tmp_path: Path) -> None:
    table = parse_token_file(
        "tokens:\n"
        f"  - identity: alice\n    roles: [approver]\n    sha256: {token_digest('t-alice')}\n"
        f"  - identity: ci\n    roles: [sender, viewer]\n    sha256: {token_digest('t-ci')}\n",
        source="tokens.yaml",
    )
    found = table.find("t-ci")
    assert found is not None
    assert (found.identity, found.roles) == ("ci", frozenset({"sender", "viewer"}))
    assert table.find("t-ci ") is None
    assert table.find("") is None


@pytest.mark.parametrize(
    ("text", "where", "what"),
    [
        ("tokens: {}\n", "tokens.yaml:1", "must be a list"),
        (
            "tokens:\n  - identity: a\n    roles: [root]\n    sha256: " + "0" * 64 + "\n",
            "tokens.yaml:3",
            "unknown role 'root'",
        ),
        (
            "tokens:\n  - identity: a\n    roles: [viewer]\n    sha256: abc\n",
            "tokens.yaml:4",
            "64 hex digits",
        ),
        (
            "tokens:\n  - identity: ' '\n    roles: [viewer]\n    sha256: " + "0" * 64 + "\n",
            "tokens.yaml:2",
            "identity",
        ),
        (
            "tokens:\n  - identity: a\n    roles: [viewer]\n    sha256: "
            + "0" * 64
            + "\n    token: x\n",
            "tokens.yaml:2",
            "unknown key 'token'",
        ),
        (
            "tokens:\n  - identity: a\n    null: 1\n    2: x\n",
            "tokens.yaml:2",
            "unknown key 2",  # keys of other types than text are named too
        ),
        (
            "tokens:\n"
            "  - {identity: a, roles: [viewer], sha256: " + "a" * 64 + "}\n"
            "  - {identity: b, roles: [viewer], sha256: " + "a" * 64 + "}\n",
            "tokens.yaml:3",
            "listed twice",
        ),
    ],
)
def test_a_bad_token_file_is_refused_naming_the_line(text: str, where: str, what: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_token_file(text, source="tokens.yaml")
    assert str(refused.value).startswith(where), str(refused.value)
    assert what in str(refused.value)


# ---- OIDC ---------------------------------------------------------------------------------
class JwksServer:
    """An identity provider's JWKS endpoint on a loopback port, and a key to sign with."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        document = json.dumps({"keys": [{**public, "kid": "key-1", "use": "sig", "alg": "RS256"}]})

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = document.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def token(self, *, key: Any = None, kid: str = "key-1", **claims: Any) -> str:
        now = int(time.time())
        document = {
            "iss": "https://login.example",
            "aud": "selfheal",
            "sub": "u-123",
            "email": "carol@example.com",
            "iat": now,
            "exp": now + 300,
            **claims,
        }
        return jwt.encode(document, key or self.key, algorithm="RS256", headers={"kid": kid})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider() -> Iterator[JwksServer]:
    served = JwksServer()
    yield served
    served.close()


@pytest.fixture
def oidc_client(provider: JwksServer, ports: Everything) -> Iterator[TestClient]:
    verifier = OidcVerifier(
        OidcSettings(
            issuer="https://login.example",
            audience="selfheal",
            jwks_url=provider.url,
            identity_claim="email",
            roles_claim="groups",
            leeway_s=30,
        )
    )
    authenticator = Authenticator(tokens=TokenTable(()), oidc=verifier)
    with TestClient(app_for(ports, authenticator)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_an_oidc_token_names_the_caller_and_its_roles(
    oidc_client: TestClient, provider: JwksServer, ports: Everything
) -> None:
    token = provider.token(groups=["approver", "unrelated-group"])
    assert oidc_client.get("/api/v1/incidents", headers=bearer(token)).status_code == 200
    answer = oidc_client.post("/api/v1/incidents/inc-1/approve", json={}, headers=bearer(token))
    assert answer.status_code == 200, answer.text
    assert ports.verdicts == [("inc-1", "carol@example.com")]
    spaced = provider.token(groups="viewer approver")
    assert oidc_client.get("/api/v1/audit", headers=bearer(spaced)).status_code == 200


@pytest.mark.parametrize(
    ("claims", "what"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "another-service"}, "audience"),
        ({"iss": "https://evil.example"}, "issuer"),
        ({"email": ""}, "'email' claim"),
    ],
)
def test_a_bad_oidc_token_is_401_saying_why(
    oidc_client: TestClient, provider: JwksServer, claims: dict[str, Any], what: str
) -> None:
    token = provider.token(groups=["viewer"], **claims)
    answer = oidc_client.get("/api/v1/incidents", headers=bearer(token))
    assert answer.status_code == 401
    assert what in answer.json()["error"].lower()


def test_a_token_signed_with_another_key_is_refused(
    oidc_client: TestClient, provider: JwksServer
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = provider.token(key=stranger, groups=["admin"])
    assert oidc_client.get("/api/v1/incidents", headers=bearer(forged)).status_code == 401
    unknown_kid = provider.token(key=stranger, kid="key-2", groups=["admin"])
    assert oidc_client.get("/api/v1/incidents", headers=bearer(unknown_kid)).status_code == 401
    unsigned = jwt.encode({"sub": "x", "groups": ["admin"]}, key=None, algorithm="none")
    assert oidc_client.get("/api/v1/incidents", headers=bearer(unsigned)).status_code == 401


def test_a_token_within_the_leeway_of_expiry_still_passes(
    oidc_client: TestClient, provider: JwksServer
) -> None:
    """Clocks differ: a token 10 s past expiry passes a 30 s leeway, one 60 s past does not."""
    just = provider.token(groups=["viewer"], exp=int(time.time()) - 10)
    assert oidc_client.get("/api/v1/incidents", headers=bearer(just)).status_code == 200
    late = provider.token(groups=["viewer"], exp=int(time.time()) - 60)
    assert oidc_client.get("/api/v1/incidents", headers=bearer(late)).status_code == 401
