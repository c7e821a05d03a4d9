"""The sandbox's own small PKI: one CA and the few certificates the local processes need.

Everything in the sandbox talks TLS on loopback: the kube-apiserver serves HTTPS, it
posts audit batches to the gateway (which must be HTTPS, because over plain HTTP the
apiserver does not send credentials), and it calls admission webhooks, which must be
HTTPS. One CA that every party trusts keeps that simple: kubeconfigs and webhook
`caBundle`s all name the same CA file.

The certificates are made with `cryptography` because Kopf's own certificate builder
(certbuilder/oscrypto) cannot load OpenSSL 3 here. Files are created once and reused,
so a sandbox directory such as `./.trail` keeps working across restarts and clients
that already trust the CA keep trusting it.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough that a sandbox directory never needs care; leaves are renewed on reuse
# when they come close to expiry (see _leaf_is_usable).
_CA_VALIDITY = datetime.timedelta(days=3650)
_LEAF_VALIDITY = datetime.timedelta(days=825)
_RENEW_BEFORE = datetime.timedelta(days=1)
# Tolerates a small clock difference between the process that signs and the one that checks.
_BACKDATE = datetime.timedelta(hours=1)

# Names the kube-apiserver's serving certificate must carry: loopback for the local
# clients, and the in-cluster names and service IP (first address of
# --service-cluster-ip-range) that tokens and clients inside the cluster would use.
_APISERVER_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
_APISERVER_IPS = ("127.0.0.1", "10.0.0.1")
_LOOPBACK_DNS_NAMES = ("localhost",)
_LOOPBACK_IPS = ("127.0.0.1",)


class PKIError(Exception):
    """The PKI directory holds files that cannot be used (unreadable or mismatched)."""


@dataclass(frozen=True)
class PKI:
    """Paths of the sandbox's certificates and keys (all PEM)."""

    ca_cert: Path
    ca_key: Path
    # Serving certificate for anything on loopback: the gateway, and admission webhooks.
    gateway_cert: Path
    gateway_key: Path
    # The kube-apiserver's client identity (CN=kube-apiserver) towards the gateway's
    # audit endpoint, which checks it against the CA.
    apiserver_client_cert: Path
    apiserver_client_key: Path
    # The kube-apiserver's own serving certificate, so admin kubeconfigs trust `ca_cert`.
    apiserver_cert: Path
    apiserver_key: Path
    # RSA key that signs and verifies ServiceAccount tokens.
    service_account_key: Path

    def ca_bundle(self) -> str:
        """The CA as base64 PEM, the form a webhook configuration's `caBundle` wants."""
        return base64.b64encode(self.ca_cert.read_bytes()).decode("ascii")


def ensure_pki(directory: Path) -> PKI:
    """Create the CA and certificates in `directory`, reusing whatever is already there.

    Idempotent: a second call returns the same files unchanged. A leaf certificate is
    re-issued only when it is missing, close to expiry, or not signed by the CA on disk.
    """
    directory.mkdir(parents=True, exist_ok=True)
    pki = PKI(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        gateway_cert=directory / "gateway.crt",
        gateway_key=directory / "gateway.key",
        apiserver_client_cert=directory / "apiserver-client.crt",
        apiserver_client_key=directory / "apiserver-client.key",
        apiserver_cert=directory / "apiserver.crt",
        apiserver_key=directory / "apiserver.key",
        service_account_key=directory / "service-account.key",
    )
    ca_cert, ca_key = _ensure_ca(pki.ca_cert, pki.ca_key)
    _ensure_leaf(
        pki.gateway_cert,
        pki.gateway_key,
        ca_cert,
        ca_key,
        common_name="trail-gateway",
        dns_names=_LOOPBACK_DNS_NAMES,
        ip_addresses=_LOOPBACK_IPS,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    _ensure_leaf(
        pki.apiserver_client_cert,
        pki.apiserver_client_key,
        ca_cert,
        ca_key,
        common_name="kube-apiserver",
        dns_names=(),
        ip_addresses=(),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    _ensure_leaf(
        pki.apiserver_cert,
        pki.apiserver_key,
        ca_cert,
        ca_key,
        common_name="kube-apiserver",
        dns_names=_APISERVER_DNS_NAMES,
        ip_addresses=_APISERVER_IPS,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
    )
    if not pki.service_account_key.exists():
        # RSA rather than EC: it is what every Kubernetes distribution uses for
        # ServiceAccount tokens (RS256), so third-party token verifiers accept it.
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_private_key(pki.service_account_key, sa_key)
    return pki


def _ensure_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if cert_path.exists() and key_path.exists():
        cert = _load_cert(cert_path)
        key = _load_ec_key(key_path)
        if cert.public_key() != key.public_key():
            raise PKIError(
                f"{cert_path} does not match {key_path}; delete the directory "
                f"{cert_path.parent} to create a new sandbox PKI"
            )
        return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trail-operator sandbox CA")])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(signs_certificates=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: a crash between the two writes leaves no certificate without its key.
    _write_private_key(key_path, key)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return cert, key


def _key_usage(signs_certificates: bool) -> x509.KeyUsage:
    """Digital signatures, plus certificate and CRL signing for a CA."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ensure_leaf(
    cert_path: Path,
    key_path: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    common_name: str,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str],
    usage: x509.ObjectIdentifier,
) -> None:
    if _leaf_is_usable(cert_path, key_path, ca_cert):
        return
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(signs_certificates=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private_key(key_path, key)
    _write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _leaf_is_usable(cert_path: Path, key_path: Path, ca_cert: x509.Certificate) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    cert = _load_cert(cert_path)
    if cert.not_valid_after_utc - _RENEW_BEFORE < _now():
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        # Issued by an earlier CA (its files were replaced): re-issue from the current one.
        return False
    return cert.public_key() == _load_ec_key(key_path).public_key()


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError as error:
        message = f"{path} is not a PEM certificate ({error}); delete it to re-create"
        raise PKIError(message) from error


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as error:
        message = f"{path} is not a PEM private key ({error}); delete it to re-create"
        raise PKIError(message) from error
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{path} is not an EC private key; delete it to re-create")
    return key


def _write_private_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(path, pem, mode=0o600)


def _write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    # Two processes starting the sandbox at once must never read a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.replace(tmp, path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
