"""Shared fixtures. Keep each group small and say what it gives."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from trail_operator.sandbox.controlplane import ControlPlane, free_port

# -- the real control plane (etcd + kube-apiserver) -------------------------------------
#
# One per test session: it starts in about 4 s, and tests keep apart by namespace.
# Its audit webhook points at https://127.0.0.1:<control_plane.gateway_port>/k8s-audit;
# the gateway fixture serves that port with control_plane.pki.gateway_cert.

KUBECTL = "/usr/bin/kubectl"


class Kubectl(Protocol):
    def __call__(
        self,
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        as_user: str | None = None,
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), gateway_port=free_port())
    plane.start()
    yield plane
    # The gateway is gone by now, so the apiserver's final audit flush cannot succeed:
    # waiting out its retries would only slow the session's end.
    plane.stop(grace=2)


@pytest.fixture(scope="session")
def kube_env(control_plane: ControlPlane) -> dict[str, str]:
    """The environment for a subprocess that should talk to the control plane as admin."""
    env = dict(os.environ)
    env["KUBECONFIG"] = str(control_plane.kubeconfig)
    # Discovery cache beside the plane, not in ~/.kube: every session has a new port.
    env["KUBECACHEDIR"] = str(control_plane.workdir / "kube-cache")
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@pytest.fixture(scope="session")
def kubectl(kube_env: dict[str, str]) -> Kubectl:
    """Run kubectl as admin (or impersonating `as_user`); fails the test on error if `check`."""

    def run(
        *args: str | Path,
        input: str | None = None,
        check: bool = True,
        as_user: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        command = [KUBECTL, *(str(a) for a in args)]
        if as_user is not None:
            command.append(f"--as={as_user}")
        result = subprocess.run(
            command, input=input, env=kube_env, capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} exited with {result.returncode}:\n"
                f"{result.stderr}{result.stdout}"
            )
        return result

    return run


# -- trail-operator itself: the session's store and the all-in-one process --------------
pytest_plugins = ["trail_fixtures"]
