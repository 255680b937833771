"""`selfheal run`'s API door, as a user meets it: refusals at the start, the local token, TLS.

Each test starts the real controller (the embedded flash sale) as a subprocess and talks to
it over loopback, with the credentials a user would have.
"""

from __future__ import annotations

import datetime
import ipaddress
import signal
import ssl
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from selfheal.api.access import LOCAL_TOKEN_FILE
from selfheal.api.auth import new_token, token_digest
from selfheal.twin import server

from support import example_config, selfheal, wait_until


@contextmanager
def running(config: Path, *, url: str, verify: object = False) -> Iterator[Path]:
    """`selfheal run --config` until the block ends; yields the file its output goes to."""
    log = config.with_name("controller.log")
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "selfheal", "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"selfheal run exited: {log.read_text()}")
        try:
            answer = httpx.get(f"{url}/readyz", timeout=2, verify=verify)  # type: ignore[arg-type]
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    try:
        wait_until(ready, timeout=120)
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_listening_beyond_loopback_without_authentication_is_refused(tmp_path: Path) -> None:
    config = example_config(tmp_path, api={"listen": f"0.0.0.0:{server.free_port()}"})
    result = selfheal("run", "--config", str(config), timeout=120)
    assert result.returncode == 2
    assert "reaches beyond this machine" in result.stderr
    assert "api.auth" in result.stderr
    assert not (tmp_path / "state" / "state.db").exists(), "nothing started"


def test_a_bad_token_file_refuses_the_start_naming_its_line(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        "tokens:\n  - identity: ci\n    roles: [sender, superuser]\n    sha256: " + "a" * 64 + "\n",
        encoding="utf-8",
    )
    config = example_config(
        tmp_path, api={"listen": "127.0.0.1:0", "auth": {"tokens_file": str(tokens)}}
    )
    result = selfheal("run", "--config", str(config), timeout=120)
    assert result.returncode == 2
    assert f"{tokens}:3:21 (tokens[0].roles[1])" in result.stderr
    assert "unknown role 'superuser'" in result.stderr
    missing = example_config(
        tmp_path, api={"listen": "127.0.0.1:0", "auth": {"tokens_file": "nowhere.yaml"}}
    )
    result = selfheal("run", "--config", str(missing), timeout=120)
    assert result.returncode == 2
    assert "api.auth.tokens_file" in result.stderr
    assert "does not exist" in result.stderr


def test_without_auth_a_local_token_lets_this_machine_send_and_read_but_not_approve(
    tmp_path: Path,
) -> None:
    port = server.free_port()
    url = f"http://127.0.0.1:{port}"
    config = example_config(tmp_path, api={"listen": f"127.0.0.1:{port}"})
    with running(config, url=url):
        token_file = tmp_path / "state" / LOCAL_TOKEN_FILE
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        local = {"authorization": f"Bearer {token_file.read_text().strip()}"}
        assert httpx.get(f"{url}/api/v1/incidents", timeout=10).status_code == 401
        assert httpx.get(f"{url}/api/v1/incidents", headers=local, timeout=10).status_code == 200
        verdict = httpx.post(
            f"{url}/api/v1/incidents/x/approve", json={}, headers=local, timeout=10
        )
        assert verdict.status_code == 403
        assert "'approver'" in verdict.json()["error"]


# ---- TLS ----------------------------------------------------------------------------------
def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(
    path: Path, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_mutual_tls_needs_a_client_certificate_and_secrets_stay_out_of_the_record(
    tmp_path: Path,
) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("selfheal test CA", ca_key, None, ca=True)
    ca_cert, _ = _write(tmp_path / "ca", ca, ca_key)
    issuer = (ca.subject, ca_key)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    server_cert, server_key_path = _write(
        tmp_path / "server", _certificate("127.0.0.1", server_key, issuer, ca=False), server_key
    )
    client_cert, client_key_path = _write(
        tmp_path / "client", _certificate("alice", client_key, issuer, ca=False), client_key
    )
    viewer, wrong = new_token(), new_token()
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text(
        yaml.safe_dump(
            {
                "tokens": [
                    {"identity": "dashboard", "roles": ["viewer"], "sha256": token_digest(viewer)}
                ]
            }
        ),
        encoding="utf-8",
    )
    port = server.free_port()
    url = f"https://127.0.0.1:{port}"
    config = example_config(
        tmp_path,
        api={
            "listen": f"127.0.0.1:{port}",
            "auth": {"tokens_file": str(tokens)},
            "tls": {
                "cert_file": str(server_cert),
                "key_file": str(server_key_path),
                "client_ca_file": str(ca_cert),
            },
        },
    )
    with_client = ssl.create_default_context(cafile=str(ca_cert))
    with_client.load_cert_chain(str(client_cert), str(client_key_path))
    without_client = ssl.create_default_context(cafile=str(ca_cert))
    with running(config, url=url, verify=with_client) as log:
        reader = {"authorization": f"Bearer {viewer}"}
        assert (
            httpx.get(
                f"{url}/api/v1/incidents", headers=reader, verify=with_client, timeout=10
            ).status_code
            == 200
        )
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{url}/api/v1/incidents", headers=reader, verify=without_client, timeout=10)
        refused = httpx.post(
            f"{url}/api/v1/alerts",
            json={"version": "4"},
            headers={"authorization": f"Bearer {wrong}"},
            verify=with_client,
            timeout=10,
        )
        assert refused.status_code == 401
        assert wrong not in refused.text
    output = log.read_text(encoding="utf-8")
    stored = b"".join(path.read_bytes() for path in (tmp_path / "state").glob("*.db*"))
    for secret in (viewer, wrong):
        assert secret not in output
        assert secret.encode() not in stored
