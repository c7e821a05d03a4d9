"""The real control plane: the admin can work, RBAC is enforced, audit batches reach an
HTTPS gateway as the PKI's `kube-apiserver` client, and stop() leaves nothing behind."""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trail_operator.sandbox.controlplane import (
    BinariesNotFoundError,
    ControlPlane,
    ControlPlaneError,
    free_port,
    kubernetes_version,
)
from trail_operator.sandbox.pki import PKI, ensure_pki

# A policy of our own for the private planes below, so these tests prove the plumbing
# whatever the shipped hack/audit-policy.yaml chooses to record.
RECORD_EVERYTHING_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
"""


def eventually(check: Callable[[], bool], timeout: float = 15) -> bool:
    """Poll `check` until true or `timeout`; RBAC and audit act a moment after the write."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


# -- the session's control plane ---------------------------------------------------------


@pytest.mark.control_plane
def test_admin_kubeconfig_lists_namespaces(control_plane: ControlPlane, kubectl: Any) -> None:
    control_plane.create_namespace("listing-check")

    def names() -> set[str]:
        items = json.loads(kubectl("get", "namespaces", "-o", "json").stdout)["items"]
        return {item["metadata"]["name"] for item in items}

    assert eventually(lambda: {"listing-check", "default", "kube-system"} <= names()), names()


@pytest.mark.control_plane
def test_kubectl_version_parses_the_server_version(kubectl: Any) -> None:
    versions = json.loads(kubectl("version", "-o", "json").stdout)

    assert versions["serverVersion"]["gitVersion"] == kubernetes_version() == "v1.32.9"
    assert (versions["serverVersion"]["major"], versions["serverVersion"]["minor"]) == ("1", "32")


@pytest.mark.control_plane
def test_service_account_may_list_secrets_only_after_a_role_binding(
    control_plane: ControlPlane, kubectl: Any
) -> None:
    namespace, user = "rbac-check", "system:serviceaccount:rbac-check:reader"
    reader = control_plane.service_account_kubeconfig(namespace, "reader")

    def can_list_secrets(**identity: Any) -> str:
        args = ("auth", "can-i", "list", "secrets", "-n", namespace)
        return str(kubectl(*args, check=False, **identity).stdout.strip())

    denied = kubectl("--kubeconfig", reader, "get", "secrets", check=False)
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr
    assert can_list_secrets(as_user=user) == "no"

    kubectl(
        "create", "role", "secret-reader", "--verb=get,list", "--resource=secrets", "-n", namespace
    )
    kubectl(
        "create",
        "rolebinding",
        "reader-reads-secrets",
        "--role=secret-reader",
        f"--serviceaccount={namespace}:reader",
        "-n",
        namespace,
    )

    assert eventually(lambda: can_list_secrets(as_user=user) == "yes")
    kubectl("--kubeconfig", reader, "get", "secrets", "-n", namespace)
    # Still nothing outside its namespace.
    assert (
        kubectl("auth", "can-i", "list", "secrets", "-A", as_user=user, check=False).stdout.strip()
        == "no"
    )


@pytest.mark.control_plane
def test_service_account_kubeconfig_authenticates_as_that_account(
    control_plane: ControlPlane, kubectl: Any
) -> None:
    path = control_plane.service_account_kubeconfig("whoami-check", "robot")
    # Idempotent: asking again gives a fresh token for the same account.
    assert control_plane.service_account_kubeconfig("whoami-check", "robot") == path

    who = json.loads(kubectl("--kubeconfig", path, "auth", "whoami", "-o", "json").stdout)

    assert who["status"]["userInfo"]["username"] == "system:serviceaccount:whoami-check:robot"


# -- private control planes (their own lifecycle) ----------------------------------------


class AuditRecorder(BaseHTTPRequestHandler):
    """Stands in for the gateway: keeps each audit batch with the client's certificate CN."""

    batches: list[tuple[str, str, dict[str, Any]]]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        peer = self.connection.getpeercert()
        subject = dict(item[0] for item in peer["subject"])
        self.batches.append((self.path, subject["commonName"], body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def audit_gateway(tmp_path: Path) -> Iterator[tuple[int, list[tuple[str, str, dict[str, Any]]]]]:
    """An HTTPS server on a free port that demands a client certificate from the PKI's CA."""
    pki = ensure_pki(tmp_path / "pki")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca_cert))
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_cert_chain(pki.gateway_cert, pki.gateway_key)
    batches: list[tuple[str, str, dict[str, Any]]] = []
    handler = type("Recorder", (AuditRecorder,), {"batches": batches})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], batches
    server.shutdown()
    server.server_close()


@pytest.mark.control_plane
def test_audit_batches_reach_an_https_gateway_as_kube_apiserver(
    tmp_path: Path, audit_gateway: tuple[int, list[tuple[str, str, dict[str, Any]]]]
) -> None:
    port, batches = audit_gateway
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORD_EVERYTHING_POLICY)
    # Same directory as the gateway's PKI, so both trust the one CA.
    with ControlPlane(tmp_path, gateway_port=port, audit_policy=policy) as plane:
        plane.create_namespace("audited")

        def namespace_creation_seen() -> bool:
            return any(
                event["verb"] == "create"
                and event["objectRef"].get("name") == "audited"
                and event["user"]["username"] == plane.admin_user
                for _, _, batch in batches
                for event in batch["items"]
            )

        assert eventually(namespace_creation_seen)
    # The apiserver appends its own `?timeout=30s`.
    assert {(path.partition("?")[0], client) for path, client, _ in batches} == {
        ("/k8s-audit", "kube-apiserver")
    }
    assert {batch["kind"] for _, _, batch in batches} == {"EventList"}


def _process_group_members(pgids: set[int]) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after the parenthesised command: state ppid pgrp ...
        pgrp = int(stat.rsplit(")", 1)[1].split()[2])
        state = stat.rsplit(")", 1)[1].split()[0]
        if pgrp in pgids and state != "Z":
            members.append(int(entry.name))
    return members


@pytest.mark.control_plane
def test_stop_leaves_no_etcd_or_apiserver_processes(
    tmp_path: Path, audit_gateway: tuple[int, list[tuple[str, str, dict[str, Any]]]]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORD_EVERYTHING_POLICY)
    # With a gateway listening, the apiserver's final audit flush succeeds at once
    # instead of retrying for seconds, so stop() is quick.
    # (Same directory as the gateway's PKI, so that both trust the one CA.)
    plane = ControlPlane(tmp_path, gateway_port=audit_gateway[0], audit_policy=policy)
    with plane:
        pids = plane.pids
        assert len(pids) == 2
        assert _process_group_members(set(pids))
        assert plane.startup_seconds is not None
        assert plane.startup_seconds < 60

    assert plane.pids == []
    assert _process_group_members(set(pids)) == []
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    plane.stop()  # idempotent
    log_names = {p.name for p in (tmp_path / "logs").iterdir()}
    assert log_names == {"etcd.log", "kube-apiserver.log"}


# -- failures that must explain themselves ------------------------------------------------


def test_missing_binaries_tell_the_user_to_run_make_testbin(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(RECORD_EVERYTHING_POLICY)
    plane = ControlPlane(tmp_path, gateway_port=free_port(), audit_policy=policy, binaries=tmp_path)

    with pytest.raises(BinariesNotFoundError, match="make testbin"):
        plane.start()
    assert plane.pids == []


@pytest.mark.control_plane
def test_a_failed_start_shows_the_apiserver_log_and_stops_etcd(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]\n")
    plane = ControlPlane(tmp_path, gateway_port=free_port(), audit_policy=policy)

    with pytest.raises(ControlPlaneError, match="kube-apiserver exited") as failure:
        plane.start()

    assert "Loud" in str(failure.value)  # the apiserver's own complaint, from its log
    assert plane.pids == []


def test_testbin_dir_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRAIL_TESTBIN_DIR", str(tmp_path / "bin"))

    plane = ControlPlane(tmp_path / "plane", gateway_port=free_port())

    assert plane.binaries == tmp_path / "bin"


# -- the PKI it runs on -------------------------------------------------------------------


def test_pki_is_created_once_and_reused(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path)
    contents = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    second = ensure_pki(tmp_path)

    assert second == first
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == contents
    assert os.stat(first.ca_key).st_mode & 0o077 == 0


def test_pki_certificates_carry_the_names_and_usages_their_peers_check(tmp_path: Path) -> None:
    pki: PKI = ensure_pki(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())

    def load(path: Path) -> x509.Certificate:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca)
        return cert

    gateway = load(pki.gateway_cert)
    sans = gateway.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    client = load(pki.apiserver_client_cert)
    assert client.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-apiserver"
    usages = client.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]

    load(pki.apiserver_cert)
    assert pki.ca_bundle().startswith("LS0tLS1CRUdJTi")  # base64 of "-----BEGIN"
