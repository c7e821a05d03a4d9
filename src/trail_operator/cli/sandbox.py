"""`trailctl up`: the local sandbox in one command.

Starts the control plane (etcd + kube-apiserver, audit webhook aimed at the
gateway), installs the CRDs and the deletion-protection policy, then runs the
operator and the gateway in this process around the embedded chDB store, all
under the data directory (`./.trail` by default). Ctrl-C stops everything.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from trail_operator.cli.processes import load_kube_credentials, run_all_in_one
from trail_operator.config import API_GROUP, Settings
from trail_operator.gateway.config import GatewayConfig
from trail_operator.sandbox.controlplane import ControlPlane, free_port
from trail_operator.store.client import Store

REPO_CRDS = Path(__file__).resolve().parents[3] / "crds"


def install_crds(kubeconfig: Path, crds_dir: Path = REPO_CRDS) -> None:
    """Apply the generated CRDs and admission policy, and wait until they are served."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run(["kubectl", "apply", "--server-side", "--force-conflicts", "-f", str(crds_dir)],
                   check=True, env=env, capture_output=True, text=True)
    plurals = ("eventdatastores", "trails", "integrations")
    names = [f"crd/{plural}.{API_GROUP}" for plural in plurals]
    subprocess.run(["kubectl", "wait", "--for=condition=Established", "--timeout=60s", *names],
                   check=True, env=env, capture_output=True, text=True)


def sandbox_gateway_config(plane: ControlPlane, data_dir: Path) -> GatewayConfig:
    """The gateway as the sandbox runs it: TLS from the sandbox PKI, a spool in `data_dir`."""
    return GatewayConfig(
        host="127.0.0.1",
        port=plane.gateway_port,
        tls_cert=plane.pki.gateway_cert,
        tls_key=plane.pki.gateway_key,
        client_ca=plane.pki.ca_cert,
        spool_dir=data_dir / "spool",
    )


def up(data_dir: Path, gateway_port: int | None = None) -> None:
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env({**os.environ, "TRAIL_DATA_DIR": str(data_dir)})
    plane = ControlPlane(data_dir / "controlplane", gateway_port=gateway_port or free_port())
    print(f"starting the control plane in {plane.workdir} ...", flush=True)
    plane.start()
    try:
        install_crds(plane.kubeconfig)
        os.environ["KUBECONFIG"] = str(plane.kubeconfig)
        load_kube_credentials()
        config = sandbox_gateway_config(plane, data_dir)
        from trail_operator.cli.client import write_gateway_file

        write_gateway_file(data_dir, f"https://127.0.0.1:{config.port}", plane.pki.ca_cert)
        store = Store(settings.store_dsn, settings.store_database)
        print(
            "\ntrail-operator sandbox is up\n"
            f"  kubeconfig:  export KUBECONFIG={plane.kubeconfig}\n"
            f"  apiserver:   {plane.server}\n"
            f"  gateway:     https://127.0.0.1:{config.port} (CA {plane.pki.ca_cert})\n"
            f"  store:       {settings.store_dsn}\n"
            f"  try:         kubectl get eds -A\n"
            "Ctrl-C stops it.\n",
            flush=True,
        )
        try:
            asyncio.run(run_all_in_one(settings, config, store))
        except KeyboardInterrupt:
            pass
        finally:
            store.close()
    finally:
        plane.stop()
