"""The cluster's TLS material: created once, valid for every name clients use, reused across restarts."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shim.pki import ensure_pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _sans(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def test_keys_and_token_are_private_and_the_directory_is_closed(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])

    assert pki.directory == tmp_path / "pki"
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    for secret in (pki.ca_key_path, pki.serving_key_path, pki.admin_key_path, pki.token_path):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert pki.token_path.read_text().strip() == pki.token
    assert len(pki.token) >= 32
    assert sorted(p.name for p in pki.directory.iterdir()) == [
        "admin.crt",
        "admin.key",
        "apiserver.crt",
        "apiserver.key",
        "ca.crt",
        "ca.key",
        "token",
    ]


def test_the_ca_is_a_ten_year_ca_named_kube_shim_ca(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    ca = _cert(pki.ca_cert_path)

    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-shim-ca"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= timedelta(days=3650)
    assert pki.ca_cert_pem == pki.ca_cert_path.read_bytes()


def test_the_serving_certificate_covers_loopback_cluster_names_hostname_and_hosts(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, ["10.1.2.3", "Shim.Example.COM", "0.0.0.0"])
    serving = _cert(pki.serving_cert_path)
    sans = _sans(serving)

    ips = set(sans.get_values_for_type(x509.IPAddress))
    names = set(sans.get_values_for_type(x509.DNSName))
    assert ips == {ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "10.1.2.3")}
    assert {
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        socket.gethostname().lower(),
        "shim.example.com",
    } == names
    serving.verify_directly_issued_by(_cert(pki.ca_cert_path))
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert timedelta(days=364) < serving.not_valid_after_utc - datetime.now(UTC) <= timedelta(days=365)


def test_the_admin_certificate_is_kube_shim_admin_in_system_masters(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    admin = x509.load_pem_x509_certificate(pki.admin_cert_pem)

    assert admin.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kube-shim-admin"
    assert [a.value for a in admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert list(admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    admin.verify_directly_issued_by(_cert(pki.ca_cert_path))
    key = serialization.load_pem_private_key(pki.admin_key_pem, password=None)
    assert key.public_key() == admin.public_key()
    assert pki.admin_cert_pem == pki.admin_cert_path.read_bytes()


def test_a_restart_reuses_the_ca_the_certificates_and_the_token(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, ["10.1.2.3"])
    serving = first.serving_cert_path.read_bytes()

    second = ensure_pki(tmp_path, ["10.1.2.3"])

    assert second.ca_fingerprint == first.ca_fingerprint
    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.token == first.token
    assert second.admin_cert_pem == first.admin_cert_pem
    assert second.serving_cert_path.read_bytes() == serving


def test_a_new_listen_host_reissues_only_the_serving_certificate(tmp_path: Path) -> None:
    first = ensure_pki(tmp_path, [])
    old_serving = first.serving_cert_path.read_bytes()

    second = ensure_pki(tmp_path, ["192.0.2.7"])

    assert second.serving_cert_path.read_bytes() != old_serving
    assert ipaddress.ip_address("192.0.2.7") in _sans(_cert(second.serving_cert_path)).get_values_for_type(
        x509.IPAddress
    )
    assert second.ca_fingerprint == first.ca_fingerprint
    assert second.admin_cert_pem == first.admin_cert_pem
    assert second.token == first.token


def test_a_serving_certificate_close_to_expiry_is_reissued(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    _replace_with_short_lived_copy(pki.serving_cert_path, pki.ca_key_path, lifetime=timedelta(days=2))

    renewed = ensure_pki(tmp_path, [])

    expiry = _cert(renewed.serving_cert_path).not_valid_after_utc
    assert expiry - datetime.now(UTC) > timedelta(days=300)
    assert renewed.ca_fingerprint == pki.ca_fingerprint


def test_a_serving_certificate_whose_key_went_missing_is_reissued(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    pki.serving_key_path.unlink()

    renewed = ensure_pki(tmp_path, [])

    key = serialization.load_pem_private_key(renewed.serving_key_path.read_bytes(), password=None)
    assert key.public_key() == _cert(renewed.serving_cert_path).public_key()
    assert renewed.ca_fingerprint == pki.ca_fingerprint


async def test_the_server_context_verifies_as_127_0_0_1_and_negotiates_http_1_1_only(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path, [])
    server = await asyncio.start_server(_close, "127.0.0.1", 0, ssl=pki.ssl_server_context())
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context(cadata=pki.ca_cert_pem.decode())
    client.set_alpn_protocols(["h2", "http/1.1"])
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname="127.0.0.1")
        tls = writer.get_extra_info("ssl_object")
        assert tls.selected_alpn_protocol() == "http/1.1"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert pki.ssl_server_context().minimum_version == ssl.TLSVersion.TLSv1_2


async def _close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


def _replace_with_short_lived_copy(cert_path: Path, ca_key_path: Path, lifetime: timedelta) -> None:
    """Re-signs the certificate at `cert_path` (same key, names and issuer) so it expires after `lifetime`."""
    cert = _cert(cert_path)
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + lifetime)
    )
    for extension in cert.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    cert_path.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
