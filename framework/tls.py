"""TLS settings, server contexts, and a development certificate authority made on first use.

With no certificate configured, linechat makes a small local CA and a
certificate for ``localhost``, ``127.0.0.1`` and ``::1`` once, in
``<data_dir>/tls/``, and logs the CA's path so clients can trust it.  That
gives every service TLS out of the box on a developer's machine, the way
``mkcert`` does, without ever pretending to be a public CA.

:class:`TlsContextProvider` holds the current :class:`ssl.SSLContext`;
``reload()`` (on SIGHUP) builds a new one from the files, so new connections
get new certificates while established ones keep theirs.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path
from typing import Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DevCertificates", "TlsContextProvider", "TlsError", "TlsSettings", "make_dev_certificates"]

_log = structlog.get_logger("linechat.tls")

#: Names the development certificate is valid for.
DEV_NAMES = ("localhost", "127.0.0.1", "::1")
# Renew the development certificate when it has less than this left.
_RENEW_BEFORE = datetime.timedelta(days=30)


class TlsSettings(BaseModel):
    """Certificates and policy shared by every TLS listener and STARTTLS upgrade."""

    model_config = ConfigDict(extra="forbid")

    cert_file: Path | None = Field(None, description="server certificate chain (PEM); none: a local development CA")
    key_file: Path | None = Field(None, description="private key of cert_file (PEM); defaults to cert_file")
    ca_file: Path | None = Field(None, description="CA bundle that client certificates must chain to")
    client_certs: Literal["none", "optional", "required"] = Field(
        "none", description="whether clients are asked for a certificate"
    )
    handshake_timeout: float = Field(10.0, gt=0, description="seconds a client gets to complete the TLS handshake")
    min_version: Literal["TLSv1.2", "TLSv1.3"] = Field("TLSv1.2", description="oldest protocol version accepted")

    @model_validator(mode="after")
    def _check(self) -> TlsSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file is set but cert_file is not")
        if self.client_certs != "none" and self.ca_file is None:
            raise ValueError(f"client_certs={self.client_certs!r} needs ca_file")
        return self


class TlsError(OSError):
    """The TLS certificate or key cannot be loaded; the message names the file."""


class DevCertificates:
    """Paths of the development CA and server certificate in a folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_cert = folder / "ca.pem"
        self.ca_key = folder / "ca-key.pem"
        self.cert = folder / "server.pem"
        self.key = folder / "server-key.pem"


def _still_good(dev: DevCertificates) -> bool:
    """True when the development files exist, parse, and are not about to expire."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(dev.cert.read_bytes())
        x509.load_pem_x509_certificate(dev.ca_cert.read_bytes())
        if not dev.key.exists() or not dev.ca_key.exists():
            return False
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > _RENEW_BEFORE


def make_dev_certificates(folder: Path) -> DevCertificates:
    """Create (once) a local CA and a server certificate for localhost in *folder*; return the paths."""
    dev = DevCertificates(folder)
    if _still_good(dev):
        return dev
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "linechat development CA"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"linechat development CA ({os.uname().nodename})"),
        ]
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in DEV_NAMES:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    def private(path: Path, data: bytes, mode: int = 0o600) -> None:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    plain = serialization.NoEncryption()
    private(dev.ca_key, ca_key.private_bytes(pem, pkcs8, plain))
    private(dev.key, key.private_bytes(pem, pkcs8, plain))
    # Keys first, certificates last: a half-written set is never "still good".
    # Certificates are public: other users' clients must be able to read the CA.
    private(dev.ca_cert, ca_cert.public_bytes(pem), 0o644)
    private(dev.cert, cert.public_bytes(pem), 0o644)
    _log.info("tls_dev_ca_created", ca_file=str(dev.ca_cert), names=list(DEV_NAMES))
    return dev


class TlsContextProvider:
    """The server context every TLS listener uses; rebuilt from the files by :meth:`reload`."""

    def __init__(self, settings: TlsSettings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.ca_file: Path | None = None  # the CA clients should trust, when we made it
        self._context: ssl.SSLContext | None = None

    @property
    def context(self) -> ssl.SSLContext:
        """The current server context (built on first use)."""
        if self._context is None:
            self._context = self._build()
        return self._context

    def check(self) -> None:
        """Build the context now; raise TlsError naming the files if they do not load."""
        try:
            self.context  # noqa: B018 - builds it
        except (OSError, ssl.SSLError, ValueError) as exc:
            s = self.settings
            raise TlsError(
                f"TLS: cannot load the certificate (tls.cert_file={s.cert_file}, tls.key_file={s.key_file}, "
                f"tls.ca_file={s.ca_file}): {exc}"
            ) from exc

    def reload(self) -> bool:
        """Build a new context from the files; keep the old one (and log why) if that fails."""
        try:
            self._context = self._build()
        except (OSError, ssl.SSLError, ValueError) as exc:
            _log.error("tls_reload_failed", error=str(exc))
            return False
        _log.info("tls_reloaded", cert_file=str(self._cert_paths()[0]))
        return True

    def _cert_paths(self) -> tuple[Path, Path]:
        s = self.settings
        if s.cert_file is not None:
            return s.cert_file, s.key_file or s.cert_file
        dev = make_dev_certificates(self.data_dir / "tls")
        if self.ca_file is None:
            _log.info("tls_dev_ca", ca_file=str(dev.ca_cert), hint="trust this CA in clients for development")
        self.ca_file = dev.ca_cert
        return dev.cert, dev.key

    def _build(self) -> ssl.SSLContext:
        s = self.settings
        cert, key = self._cert_paths()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3 if s.min_version == "TLSv1.3" else ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(cert, key)
        ctx.options |= ssl.OP_NO_COMPRESSION
        if s.client_certs != "none":
            ctx.load_verify_locations(cafile=s.ca_file)
            ctx.verify_mode = ssl.CERT_REQUIRED if s.client_certs == "required" else ssl.CERT_OPTIONAL
        return ctx
