"""The cluster's TLS material: a CA, the API server's serving certificate, an admin client certificate and an
admin bearer token, generated once into `<data_dir>/pki/` and reused on every restart.

Files (kubeadm's names): `ca.crt`/`ca.key`, `apiserver.crt`/`apiserver.key`, `admin.crt`/`admin.key`, `token`,
and each node server's serving certificate `nodes/<node>.crt`/`nodes/<node>.key` (kubelet's, issued by the CA).
Every file is mode 0600 (the CA certificate travels in kubeconfigs anyway). Leaf certificates are reissued
when they no longer fit (SANs, issuer) or are close to expiry; the CA and the token are never replaced, so
kubeconfigs and joined nodes keep working.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import re
import secrets
import socket
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "kube-shim-ca"
SERVING_NAME = "kube-shim-apiserver"
NODE_USER_PREFIX, NODE_GROUP = "system:node:", "system:nodes"  # a kubelet's serving certificate subject
ADMIN_USER = "kube-shim-admin"
ADMIN_GROUP = "system:masters"

CLUSTER_ID_LENGTH = 12  # hex digits: 48 bits, short enough for network names
CA_LIFETIME = timedelta(days=3650)
LEAF_LIFETIME = timedelta(days=365)
RENEW_BEFORE = timedelta(days=30)
# backdated so a second machine whose clock runs slightly behind still accepts a fresh certificate
CLOCK_SKEW = timedelta(minutes=5)

# the names in-cluster clients and kubeconfigs use for the API server, as on a kubeadm cluster
DEFAULT_SERVING_HOSTS = (
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)

PrivateKey = ec.EllipticCurvePrivateKey
SanEntry = x509.DNSName | x509.IPAddress
NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a DNS subdomain, as Node names are


@dataclass(frozen=True)
class ServingCertificate:
    """A node server's certificate and key files."""

    cert_path: Path
    key_path: Path


@dataclass(frozen=True)
class Pki:
    """Where the TLS material lives, plus the PEM bytes and token that kubeconfigs embed."""

    directory: Path
    ca_cert_pem: bytes
    admin_cert_pem: bytes
    admin_key_pem: bytes
    token: str

    @property
    def ca_cert_path(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert_path(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key_path(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def admin_cert_path(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def admin_key_path(self) -> Path:
        return self.directory / "admin.key"

    @property
    def token_path(self) -> Path:
        return self.directory / "token"

    @property
    def ca_fingerprint(self) -> str:
        """SHA-256 of the CA certificate (DER), lowercase hex: what identifies this cluster's trust root."""
        return ca_fingerprint(self.ca_cert_pem)

    def ssl_server_context(self) -> ssl.SSLContext:
        """The API server's TLS context: TLS 1.2+, HTTP/1.1 only, optional CA-verified client certificates."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.serving_cert_path, self.serving_key_path)
        context.load_verify_locations(cadata=self.ca_cert_pem.decode())
        # asked for but not required: token clients send none, certificate clients are checked against the CA
        context.verify_mode = ssl.CERT_OPTIONAL
        # never offer h2: Go clients would switch to it and aiohttp only speaks HTTP/1.1
        context.set_alpn_protocols(["http/1.1"])
        return context


def ensure_pki(data_dir: Path, hosts: list[str]) -> Pki:
    """Creates or reuses the TLS material under `<data_dir>/pki/`.

    `hosts` are extra host names or IP literals the serving certificate must be valid for (the listen host
    among them); the defaults in `DEFAULT_SERVING_HOSTS` and this machine's hostname are always included.
    """
    directory = data_dir / "pki"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = datetime.now(UTC)

    ca = _load_pair(directory, "ca")
    if ca is None:
        ca = _create_ca(now)
        _write_pair(directory, "ca", *ca)
    ca_cert = ca[0]

    sans = serving_sans([*DEFAULT_SERVING_HOSTS, socket.gethostname(), *hosts])
    serving = _load_pair(directory, "apiserver")
    if serving is None or not _fits(serving[0], ca_cert, sans, now):
        serving = _issue(ca, _name(SERVING_NAME), ExtendedKeyUsageOID.SERVER_AUTH, sans, now)
        _write_pair(directory, "apiserver", *serving)

    admin = _load_pair(directory, "admin")
    if admin is None or not _fits(admin[0], ca_cert, [], now):
        admin = _issue(ca, _name(ADMIN_USER, ADMIN_GROUP), ExtendedKeyUsageOID.CLIENT_AUTH, [], now)
        _write_pair(directory, "admin", *admin)

    return Pki(
        directory=directory,
        ca_cert_pem=_cert_pem(ca_cert),
        admin_cert_pem=_cert_pem(admin[0]),
        admin_key_pem=_key_pem(admin[1]),
        token=_load_or_create_token(directory / "token"),
    )


def ca_fingerprint(ca_cert_pem: bytes) -> str:
    """SHA-256 of a CA certificate (DER), lowercase hex."""
    der = x509.load_pem_x509_certificate(ca_cert_pem).public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def cluster_id(ca_cert_pem: bytes) -> str:
    """A short name of the cluster its CA belongs to, the same for every node and on every restart (the CA is
    never replaced): what a node marks its Podman pods and networks with, so two clusters on a host never take
    each other's."""
    return ca_fingerprint(ca_cert_pem)[:CLUSTER_ID_LENGTH]


def ensure_node_certificate(data_dir: Path, node_name: str, hosts: list[str]) -> ServingCertificate:
    """The serving certificate of node `node_name`'s server, issued by the cluster CA in `data_dir` for exactly
    `hosts` (the addresses the API server dials: its InternalIP, and names), reused while it fits.

    The API server checks a node's certificate against the address it dials, so a node given a certificate
    for its own address cannot answer for another's. Raises ValueError for a bad name or a data dir without
    a CA.
    """
    if not NODE_NAME.fullmatch(node_name):
        raise ValueError(f"{node_name!r} is not a valid node name (lowercase letters, digits, '-' and '.')")
    directory = data_dir / "pki"
    ca = _load_pair(directory, "ca")
    if ca is None:
        raise ValueError(f"{directory} holds no cluster CA: run `kube-shim up --data-dir {data_dir}` once first")
    nodes = directory / "nodes"
    nodes.mkdir(mode=0o700, exist_ok=True)
    now = datetime.now(UTC)
    sans = serving_sans(hosts)
    pair = _load_pair(nodes, node_name)
    if pair is None or not _fits(pair[0], ca[0], sans, now, exact=True):
        subject = _name(NODE_USER_PREFIX + node_name, NODE_GROUP)
        pair = _issue(ca, subject, ExtendedKeyUsageOID.SERVER_AUTH, sans, now)
        _write_pair(nodes, node_name, *pair)
    return ServingCertificate(nodes / f"{node_name}.crt", nodes / f"{node_name}.key")


def serving_sans(hosts: list[str]) -> list[SanEntry]:
    """Subject alternative names for `hosts`: IP literals as IP entries, others as DNS names, no repeats."""
    sans: list[SanEntry] = []
    for host in hosts:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            entry: SanEntry | None = x509.DNSName(host.lower()) if host else None
        else:
            # a wildcard listen address is nobody's destination, so it cannot be a name to verify
            entry = None if address.is_unspecified else x509.IPAddress(address)
        if entry is not None and entry not in sans:
            sans.append(entry)
    return sans


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Replaces `path` with `data` in one rename (readers never see half a file), creating parent dirs.

    The temporary file is created 0600, so secrets are never readable by others even for an instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_ca(now: datetime) -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(CA_NAME)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _issue(
    ca: tuple[x509.Certificate, PrivateKey],
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[SanEntry],
    now: datetime,
) -> tuple[x509.Certificate, PrivateKey]:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _fits(
    cert: x509.Certificate, ca_cert: x509.Certificate, sans: list[SanEntry], now: datetime, exact: bool = False
) -> bool:
    """Whether a stored leaf certificate can stay: issued by this CA, names covered (`exact`: no others either),
    not about to expire."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        return False
    try:
        present = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return not sans
    if exact and len(present) != len(sans):
        return False
    return all(entry in present for entry in sans)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _load_pair(directory: Path, stem: str) -> tuple[x509.Certificate, PrivateKey] | None:
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, PrivateKey):
        raise ValueError(f"{key_path}: expected an EC private key")
    if key.public_key() != cert.public_key():
        return None
    return cert, key


def _write_pair(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> None:
    # a crash between the two writes leaves a mismatched pair, which _load_pair treats as missing
    write_atomically(directory / f"{stem}.key", _key_pem(key), 0o600)
    write_atomically(directory / f"{stem}.crt", _cert_pem(cert), 0o600)


def _load_or_create_token(path: Path) -> str:
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    write_atomically(path, token.encode() + b"\n", 0o600)
    return token


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
