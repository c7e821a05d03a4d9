"""How trailctl reaches the gateway's query API: where it is, whom to trust, who is asking.

The query API authenticates callers with their Kubernetes token, so the CLI
presents the same identity `kubectl` does: `--token`, else the current
kubeconfig user's token (a `token`, a `tokenFile`, or what an exec or
auth-provider plugin hands out, through the kubernetes client's own loader so
that every kubeconfig kubectl accepts works here too). Users with only a
client certificate pass a token (`kubectl create token <serviceaccount>`).

Where the gateway is: `--gateway URL` and `--ca FILE`, else the environment
(`TRAIL_GATEWAY_URL`, `TRAIL_GATEWAY_CA`), else `<data dir>/gateway.json`,
which `trailctl up` writes for its sandbox (`{"url": ..., "ca": ...}`; data
dir `$TRAIL_DATA_DIR` or `.trail`). A CA from that file is used only with the
URL from the same file: it certifies that sandbox and no other server.

Every request passes `verify=` explicitly: `requests` would otherwise let
`REQUESTS_CA_BUNDLE` from the environment replace the gateway's CA. Loopback
gateways are reached without the environment's proxies.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import orjson
import requests

GATEWAY_FILE: Final = "gateway.json"
DEFAULT_DATA_DIR: Final = ".trail"
CONNECT_TIMEOUT_SECONDS: Final = 10.0
# Longer than the query API's 60 s execution limit, so the gateway's own
# limit message arrives instead of a client timeout.
READ_TIMEOUT_SECONDS: Final = 90.0


class GatewayClientError(Exception):
    """A call that failed; the message is what the user should read."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class GatewayLocation:
    url: str
    ca: Path | None = None


def gateway_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("TRAIL_DATA_DIR") or DEFAULT_DATA_DIR) / GATEWAY_FILE


def write_gateway_file(data_dir: Path, url: str, ca: Path | None) -> Path:
    """Record where a sandbox's gateway listens, for trailctl commands run later."""
    path = data_dir / GATEWAY_FILE
    body = {"url": url, "ca": str(ca) if ca else None}
    path.write_bytes(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
    return path


def locate_gateway(url: str | None = None, ca: str | None = None,
                   env: Mapping[str, str] | None = None) -> GatewayLocation:
    """The gateway to call, from the flags, the environment or the sandbox's gateway.json."""
    env = os.environ if env is None else env
    ca = ca or env.get("TRAIL_GATEWAY_CA") or None
    url = url or env.get("TRAIL_GATEWAY_URL") or None
    if url is None:
        path = gateway_file(env)
        try:
            recorded = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            raise GatewayClientError(
                "no gateway to ask: pass --gateway URL (and --ca FILE), set TRAIL_GATEWAY_URL,"
                f" or start the sandbox with `trailctl up`, which writes {path}") from None
        except (OSError, orjson.JSONDecodeError) as exc:
            raise GatewayClientError(f"cannot read {path}: {exc}") from None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("url"), str):
            raise GatewayClientError(f"{path} has no \"url\"; pass --gateway URL instead")
        url = recorded["url"]
        ca = ca or recorded.get("ca") or None
    if not url.startswith(("https://", "http://")):
        raise GatewayClientError(f"gateway URL {url!r} must start with https://")
    ca_path = Path(ca) if ca else None
    if ca_path is not None and not ca_path.is_file():
        raise GatewayClientError(f"CA file {ca_path} does not exist")
    return GatewayLocation(url=url.rstrip("/"), ca=ca_path)


def kubeconfig_token(kubeconfig: str | None = None, context: str | None = None) -> str:
    """The bearer token of the kubeconfig's current user (or `context`'s)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig or os.environ.get("KUBECONFIG"),
                                context=context, client_configuration=configuration,
                                persist_config=False)
    except Exception as exc:  # the loader raises several kinds; all mean "no usable kubeconfig"
        raise GatewayClientError(
            f"cannot read a token from the kubeconfig ({exc}); pass --token") from None
    if configuration.refresh_api_key_hook is not None:
        configuration.refresh_api_key_hook(configuration)
    header = str(configuration.api_key.get("BearerToken") or "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise GatewayClientError(
            "the kubeconfig's user has no bearer token (a client certificate or a password"
            " cannot be passed on to the gateway); pass --token, e.g."
            " --token \"$(kubectl create token <serviceaccount>)\"")
    return token


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class GatewayClient:
    """Calls to the gateway's query API; each returns the decoded JSON answer."""

    def __init__(self, location: GatewayLocation, token: str) -> None:
        self.location = location
        self.token = token
        self._session = requests.Session()
        if _is_loopback(location.url):
            self._session.trust_env = False

    def close(self) -> None:
        self._session.close()

    def lookup_events(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/LookupEvents", body)

    def query(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return self.post("/Query", body)

    def post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.location.url}{path}"
        verify: str | bool = str(self.location.ca) if self.location.ca else True
        try:
            response = self._session.post(
                url, data=orjson.dumps(body), verify=verify,
                headers={"Authorization": f"Bearer {self.token}",
                         "Content-Type": "application/json"},
                timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS))
        except requests.exceptions.SSLError:
            raise GatewayClientError(
                f"cannot verify the gateway's certificate at {self.location.url}: pass"
                " --ca FILE with the CA that signed it") from None
        except requests.exceptions.Timeout:
            raise GatewayClientError(
                f"the gateway at {self.location.url} did not answer in time") from None
        except requests.exceptions.RequestException as exc:
            raise GatewayClientError(
                f"cannot reach the gateway at {self.location.url}"
                f" ({type(exc).__name__}); is it running?") from None
        return _decoded(response)


def _decoded(response: requests.Response) -> dict[str, Any]:
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = None
    if response.ok and isinstance(answer, dict):
        return answer
    if isinstance(answer, dict) and isinstance(answer.get("message"), str):
        code = str(answer.get("errorCode") or f"HTTP {response.status_code}")
        raise GatewayClientError(f"{code}: {answer['message']}", response.status_code, code)
    text = response.text.strip().splitlines()[0][:300] if response.text.strip() else ""
    raise GatewayClientError(
        f"the gateway answered HTTP {response.status_code} {response.reason}"
        + (f": {text}" if text else ""), response.status_code)
