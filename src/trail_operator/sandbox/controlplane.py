"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, for tests and `trailctl up`.

The operator's value is in what the real apiserver does: audit webhook batches, RBAC
decisions, admission webhooks, CRD schema validation. A fake would only agree with our
own assumptions, so tests and the local sandbox run the real binaries, built by
`make testbin` into a cache outside the repo.

Only etcd and kube-apiserver run: no controller-manager, scheduler or kubelet. So
nothing creates `default` ServiceAccounts or token Secrets, garbage-collects owned
objects or finalizes deleted namespaces; `create_namespace` and
`service_account_kubeconfig` do the little of that work the tests need.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml

from trail_operator.sandbox.pki import PKI, ensure_pki

logger = logging.getLogger(__name__)

# src/trail_operator/sandbox/controlplane.py -> the repository root.
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_AUDIT_POLICY = REPO_ROOT / "hack" / "audit-policy.yaml"
TESTBIN_GO_MOD = REPO_ROOT / "hack" / "testbin" / "go.mod"

ADMIN_USER = "trail-admin"
# The ServiceAccount token issuer; https so that OIDC discovery stays possible.
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
_LOG_TAIL_LINES = 30
# The variables Go (and Python) read for proxies. The apiserver calls the gateway and
# admission webhooks on 127.0.0.1 directly; a proxy in between would break them.
_PROXY_VARIABLES = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)


class ControlPlaneError(Exception):
    """The control plane could not be started or used."""


class BinariesNotFoundError(ControlPlaneError):
    """The etcd or kube-apiserver binary is not where the control plane looks for it."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (the OS picks it)."""
    return _free_ports(1)[0]


def kubernetes_version() -> str:
    """The Kubernetes version the test binaries are built from (`hack/testbin/go.mod`)."""
    try:
        text = TESTBIN_GO_MOD.read_text()
    except OSError as error:
        raise BinariesNotFoundError(
            f"cannot read {TESTBIN_GO_MOD} to learn the kube-apiserver version ({error}); "
            "pass `binaries=` or set TRAIL_TESTBIN_DIR to the directory holding "
            "etcd and kube-apiserver"
        ) from error
    match = re.search(r"^require\s+k8s\.io/kubernetes\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise BinariesNotFoundError(f"{TESTBIN_GO_MOD} has no `require k8s.io/kubernetes vX` line")
    return match.group(1)


def default_binaries_dir() -> Path:
    """Where `make testbin` puts etcd and kube-apiserver (same rule as hack/testbin/build.sh)."""
    if override := os.environ.get("TRAIL_TESTBIN_DIR"):
        return Path(override)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "trail-operator" / "testbin" / kubernetes_version()


class ControlPlane:
    """etcd and kube-apiserver as child processes, everything kept in `workdir`.

    The apiserver sends its audit events to `https://127.0.0.1:<gateway_port>/k8s-audit`,
    authenticating with the PKI's `apiserver_client_cert`; the gateway on that port is
    started by someone else, before or after this control plane. Events produced while
    nothing listens there are retried briefly, then dropped by the apiserver.
    """

    def __init__(
        self,
        workdir: Path,
        gateway_port: int,
        audit_policy: Path | None = None,
        binaries: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.gateway_port = gateway_port
        self.audit_policy = audit_policy if audit_policy is not None else DEFAULT_AUDIT_POLICY
        self.binaries = binaries if binaries is not None else default_binaries_dir()
        self.etcd_binary = self.binaries / "etcd"
        self.apiserver_binary = self.binaries / "kube-apiserver"

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logs_dir = workdir / "logs"
        self.pki: PKI = ensure_pki(workdir / "pki")
        self.admin_user = ADMIN_USER
        self.admin_token = secrets.token_urlsafe(32)
        self.etcd_client_port, self.etcd_peer_port, self.port = _free_ports(3)
        self.server = f"https://127.0.0.1:{self.port}"
        self.etcd_url = f"http://127.0.0.1:{self.etcd_client_port}"
        self.kubeconfig = workdir / "kubeconfig"
        # Seconds the last start() took until /readyz answered ok.
        self.startup_seconds: float | None = None

        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._log_files: list[IO[bytes]] = []
        self._write_kubeconfig(self.kubeconfig, user=self.admin_user, token=self.admin_token)

    # -- lifecycle -----------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start etcd then kube-apiserver; return once `/readyz` answers ok."""
        if self._apiserver is not None:
            raise ControlPlaneError("the control plane is already started; stop() it first")
        self._check_inputs()
        began = time.monotonic()
        deadline = began + timeout
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._etcd = self._spawn("etcd", self._etcd_args())
            self._wait_until_ok(self._etcd, "etcd", f"{self.etcd_url}/health", deadline)
            self._apiserver = self._spawn("kube-apiserver", self._apiserver_args())
            self._wait_until_ok(
                self._apiserver, "kube-apiserver", f"{self.server}/readyz", deadline
            )
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        logger.info("control plane ready at %s in %.1f s", self.server, self.startup_seconds)

    def stop(self, grace: float = 10) -> None:
        """Stop both processes (and anything they spawned); safe to call more than once.

        Each process gets `grace` seconds after SIGTERM before SIGKILL. On SIGTERM the
        apiserver flushes buffered audit events to the gateway; when some are still
        buffered and the gateway is already gone, its retries take about 8 s, so pass a
        smaller `grace` when those events do not matter (test teardown).
        """
        # The apiserver first: stopping etcd under it only produces a burst of errors.
        for process in (self._apiserver, self._etcd):
            if process is not None:
                _stop_process_group(process, grace)
        self._apiserver = None
        self._etcd = None
        for stream in self._log_files:
            stream.close()
        self._log_files.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running etcd and kube-apiserver (empty once stopped)."""
        return [p.pid for p in (self._etcd, self._apiserver) if p is not None]

    # -- access for other identities ----------------------------------------------

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A `kubernetes.client.ApiClient` for `kubeconfig` (default: the admin's)."""
        from kubernetes import config  # imported here: slow to import, only some callers need it

        path = kubeconfig if kubeconfig is not None else self.kubeconfig
        return config.new_client_from_config(config_file=str(path))

    def create_namespace(self, name: str) -> None:
        """Create namespace `name` and its `default` ServiceAccount, if missing.

        Without a controller-manager nobody creates `default`, and the ServiceAccount
        admission plugin then refuses every Pod in the namespace.
        """
        from kubernetes import client

        with self.api_client() as api:
            core = client.CoreV1Api(api)
            _create_if_missing(
                core.create_namespace, client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
            )
            _create_if_missing(
                lambda body: core.create_namespaced_service_account(name, body),
                client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default")),
            )

    def service_account_kubeconfig(
        self, namespace: str, name: str, expiration_seconds: int = 86400
    ) -> Path:
        """A kubeconfig that acts as ServiceAccount `namespace/name` (both made if missing).

        The token comes from the TokenRequest API, as a kubelet would get it: there is
        no token controller here to fill a Secret.
        """
        from kubernetes import client

        self.create_namespace(namespace)
        with self.api_client() as api:
            core = client.CoreV1Api(api)
            _create_if_missing(
                lambda body: core.create_namespaced_service_account(namespace, body),
                client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)),
            )
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(
                    audiences=[SERVICE_ACCOUNT_ISSUER], expiration_seconds=expiration_seconds
                )
            )
            answer = core.create_namespaced_service_account_token(name, namespace, request)
        path = self.workdir / "kubeconfigs" / f"{namespace}.{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_kubeconfig(
            path,
            user=f"system:serviceaccount:{namespace}:{name}",
            token=answer.status.token,
            namespace=namespace,
        )
        return path

    # -- internals -----------------------------------------------------------------

    def _check_inputs(self) -> None:
        missing = [
            b for b in (self.etcd_binary, self.apiserver_binary) if not os.access(b, os.X_OK)
        ]
        if missing:
            names = ", ".join(str(m) for m in missing)
            raise BinariesNotFoundError(
                f"missing test binaries: {names}. Run `make testbin` to build kube-apiserver "
                "and install etcd, or set TRAIL_TESTBIN_DIR to a directory that holds both"
            )
        if not self.audit_policy.is_file():
            raise ControlPlaneError(
                f"audit policy {self.audit_policy} does not exist; pass `audit_policy=` "
                "with the path of an audit.k8s.io/v1 Policy file"
            )

    def _etcd_args(self) -> list[str]:
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        return [
            str(self.etcd_binary),
            "--name=trail",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=trail={peer_url}",
            "--initial-cluster-state=new",
            "--logger=zap",
        ]

    def _apiserver_args(self) -> list[str]:
        token_file = self.workdir / "tokens.csv"
        # token,user,uid,"groups": the admin bypasses RBAC through system:masters.
        token_file.write_text(
            f'{self.admin_token},{self.admin_user},{self.admin_user},"system:masters"\n'
        )
        token_file.chmod(0o600)
        audit_webhook = self.workdir / "audit-webhook.kubeconfig"
        _write_yaml(
            audit_webhook,
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "gateway",
                        "cluster": {
                            "server": f"https://127.0.0.1:{self.gateway_port}/k8s-audit",
                            "certificate-authority": str(self.pki.ca_cert),
                        },
                    }
                ],
                "users": [
                    {
                        "name": "kube-apiserver",
                        "user": {
                            "client-certificate": str(self.pki.apiserver_client_cert),
                            "client-key": str(self.pki.apiserver_client_key),
                        },
                    }
                ],
                "contexts": [
                    {"name": "gateway", "context": {"cluster": "gateway", "user": "kube-apiserver"}}
                ],
                "current-context": "gateway",
            },
        )
        return [
            str(self.apiserver_binary),
            f"--etcd-servers={self.etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--cert-dir={self.workdir / 'apiserver-certs'}",
            # Served with a PKI certificate so every kubeconfig names the one sandbox CA.
            f"--tls-cert-file={self.pki.apiserver_cert}",
            f"--tls-private-key-file={self.pki.apiserver_key}",
            "--authorization-mode=RBAC",
            f"--token-auth-file={token_file}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={self.pki.service_account_key}",
            f"--service-account-signing-key-file={self.pki.service_account_key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            # A loopback advertise address is refused for the `kubernetes` Endpoints
            # every 10 s; nothing in the sandbox needs that Service.
            "--endpoint-reconciler-type=none",
            f"--audit-policy-file={self.audit_policy}",
            f"--audit-webhook-config-file={audit_webhook}",
            "--audit-webhook-mode=batch",
            # The gateway parses audit.k8s.io/v1 (today's default); pinned so a newer
            # apiserver cannot change it under us.
            "--audit-webhook-version=audit.k8s.io/v1",
            "--audit-webhook-batch-max-wait=1s",
            # The default (10 s, growing) stalls the audit stream for over a minute
            # after a gateway restart; tests wait for events, so retry sooner.
            "--audit-webhook-initial-backoff=1s",
        ]

    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = (self.logs_dir / f"{name}.log").open("ab")
        self._log_files.append(log)
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_environment(),
            # Own process group, so stop() reaches anything the binary forks and
            # a Ctrl-C meant for the test runner does not kill it half-way.
            start_new_session=True,
            cwd=self.workdir,
        )

    def _wait_until_ok(
        self, process: subprocess.Popen[bytes], name: str, url: str, deadline: float
    ) -> None:
        context = ssl.create_default_context(cafile=str(self.pki.ca_cert))
        request = urllib.request.Request(
            url, headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        # No proxy handler: urllib honours HTTPS_PROXY, and loopback must be reached directly.
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        last_answer = "no answer yet"
        while True:
            if process.poll() is not None:
                raise ControlPlaneError(
                    f"{name} exited with code {process.returncode} while starting; "
                    f"last lines of its log:\n{self._log_tail(name)}"
                )
            try:
                with opener.open(request, timeout=2) as response:
                    body = response.read().decode(errors="replace")
                    if response.status == 200 and ("ok" in body or '"health":"true"' in body):
                        return
                    last_answer = f"HTTP {response.status}: {body[:200]}"
            except urllib.error.HTTPError as error:
                last_answer = f"HTTP {error.code}: {error.read()[:500].decode(errors='replace')}"
            except (OSError, ssl.SSLError) as error:
                last_answer = str(error)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"{name} was not ready at {url} in time (last answer: {last_answer}); "
                    f"last lines of its log:\n{self._log_tail(name)}"
                )
            time.sleep(0.2)

    def _log_tail(self, name: str) -> str:
        try:
            lines = (self.logs_dir / f"{name}.log").read_text(errors="replace").splitlines()
        except OSError as error:
            return f"(no log: {error})"
        return "\n".join(lines[-_LOG_TAIL_LINES:])

    def _write_kubeconfig(
        self, path: Path, *, user: str, token: str, namespace: str = "default"
    ) -> None:
        _write_yaml(
            path,
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "trail-sandbox",
                        "cluster": {
                            "server": self.server,
                            "certificate-authority": str(self.pki.ca_cert),
                        },
                    }
                ],
                "users": [{"name": user, "user": {"token": token}}],
                "contexts": [
                    {
                        "name": "trail-sandbox",
                        "context": {
                            "cluster": "trail-sandbox",
                            "user": user,
                            "namespace": namespace,
                        },
                    }
                ],
                "current-context": "trail-sandbox",
            },
        )


def _free_ports(count: int) -> list[int]:
    # All sockets stay open until every port is picked, so the OS cannot hand out one twice.
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def _child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARIABLES}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


def _stop_process_group(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.returncode is not None:
        # Reaped earlier (it died while starting): its pid may already name
        # another process group, so signal nothing.
        return
    # With start_new_session the child leads its own group: pgid == pid.
    for sig, wait_for in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait_for)
            break
        except subprocess.TimeoutExpired:
            continue
    # The leader may be gone while something it spawned still runs in the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _create_if_missing(create: Any, body: Any) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        create(body)
    except ApiException as error:
        if error.status != 409:  # 409 Conflict: it exists already, which is what we want
            raise


def _write_yaml(path: Path, document: dict[str, Any]) -> None:
    # Kubeconfigs carry tokens and key paths: readable by the owner only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as stream:
        yaml.safe_dump(document, stream, sort_keys=False)
