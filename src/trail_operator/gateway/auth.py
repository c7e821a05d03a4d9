"""Who may post to the gateway.

The audit webhook endpoint takes only the apiserver: a client certificate
signed by the configured CA with an allowed common name, or the configured
bearer token. PutAuditEvents takes the channel's own bearer token.
"""

from __future__ import annotations

import hmac
import ssl
from typing import Any

from aiohttp import web

from trail_operator.gateway.config import GatewayConfig


class AuthError(PermissionError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def build_ssl_context(config: GatewayConfig) -> ssl.SSLContext | None:
    if not config.tls_cert or not config.tls_key:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    if config.client_ca:
        context.load_verify_locations(str(config.client_ca))
        # Optional: PutAuditEvents clients authenticate with tokens instead.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _peer_common_name(request: web.Request) -> str | None:
    transport = request.transport
    if transport is None:
        return None
    cert: Any = transport.get_extra_info("peercert")
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


def authorize_audit_webhook(request: web.Request, config: GatewayConfig) -> str:
    """The authenticated sender's name, or AuthError."""
    name = _peer_common_name(request)
    if name is not None:
        if name in config.audit_client_names:
            return name
        raise AuthError(403, f"client certificate {name!r} may not post audit events")
    token = bearer_token(request)
    if token and config.audit_token and hmac.compare_digest(token, config.audit_token):
        return "bearer-token"
    raise AuthError(401, "audit events need the apiserver's client certificate or the "
                         "gateway's audit bearer token")
