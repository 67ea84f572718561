"""``plantctl certs init``: the controller's OPC-UA client certificate, made once per controller.

Theory of operation
-------------------
An OPC-UA session secured with Basic256Sha256 (sign and encrypt, plantctl's default) needs an
*application instance certificate* on each side. The controller's lives in the station's
``cert_dir`` under the names the driver looks for (``plantctl-client-cert.der``, DER, and
``plantctl-client-key.pem``, PKCS#8 PEM, mode 0600). Its subject alternative names carry the
application URI the driver connects with (``urn:plantctl:client`` unless the site says otherwise)
and the host name(s) of the controller: servers reject a certificate whose URI differs from the
session's, and the driver itself replaces, on start, a certificate that does not name the machine
it runs on (``plantctl.fieldbus.opcua.ensure_client_certificate``), so run this command *on the
controller's host*.

``init`` is idempotent: a valid pair (key matches the certificate, the URI and every requested
host named, not expiring within ``renew_days``) is kept, so re-running it never changes a
certificate a PLC already trusts; ``--force`` makes a new one (which every PLC must then trust
again). The private key is written with mode 0600 from the start (never world-readable, not even
for a moment) and replaced atomically.

A PLC's server trusts the controller once its certificate is in the server's trust list; the
command prints the file to copy and its thumbprints (what a PLC's web page shows), and
``--trust-dir`` copies it into a folder directly (e.g. the simulator's ``<cert dir>/trusted``).
The certificate is public; the key never leaves this machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import socket
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .errors import PlantctlError

__all__ = ["CERT_FILE", "KEY_FILE", "ClientIdentity", "add_cli", "init_client_certificate"]

# The driver's file names and URI (plantctl.fieldbus.opcua); repeated here so that this command does
# not import asyncua's client just to print a path.
CERT_FILE = "plantctl-client-cert.der"
KEY_FILE = "plantctl-client-key.pem"
DEFAULT_APPLICATION_URI = "urn:plantctl:client"


class CertError(PlantctlError):
    """The certificate folder cannot be written or holds something unusable."""


@dataclass(frozen=True)
class ClientIdentity:
    cert: Path
    key: Path
    application_uri: str
    hosts: tuple[str, ...]
    not_after: dt.datetime
    sha1: str  # the OPC-UA thumbprint, as servers list it
    sha256: str
    created: bool  # False: a valid certificate was already there and was kept


def _fingerprint(der: bytes, algo: str) -> str:
    return ":".join(f"{b:02X}" for b in hashlib.new(algo, der).digest())


def _names(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier)), list(san.get_values_for_type(x509.DNSName))


def _usable(cert_path: Path, key_path: Path, uri: str, hosts: tuple[str, ...], renew_days: float) -> bool:
    """True when the pair on disk can be kept as it is."""
    if not cert_path.is_file() or not key_path.is_file():
        return False
    try:
        cert = x509.load_der_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return False
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not isinstance(key, rsa.RSAPrivateKey) or key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        return False  # not the key of this certificate
    uris, dns = _names(cert)
    if uri not in uris or any(h not in dns for h in hosts):
        return False
    # The wall clock on purpose: a certificate's validity is calendar time, checked against the
    # same clock the peer will check it with (an I/O edge at start-up, not plant logic).
    now = dt.datetime.now(dt.UTC)
    return cert.not_valid_before_utc <= now and cert.not_valid_after_utc - now > dt.timedelta(days=renew_days)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only from the first byte."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp creates it 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_public(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def init_client_certificate(
    folder: str | Path,
    application_uri: str = DEFAULT_APPLICATION_URI,
    hosts: list[str] | tuple[str, ...] | None = None,
    *,
    days: int = 365,
    renew_days: float = 30.0,
    force: bool = False,
) -> ClientIdentity:
    """Create (or keep) the controller's OPC-UA client certificate and key in ``folder``."""
    from asyncua.crypto.cert_gen import generate_private_key, generate_self_signed_app_certificate

    names = tuple(dict.fromkeys(hosts or [socket.gethostname()]))
    if not application_uri or not all(names):
        raise CertError("the application URI and host names must not be empty")
    d = Path(folder)
    cert_path, key_path = d / CERT_FILE, d / KEY_FILE
    try:
        d.mkdir(parents=True, exist_ok=True)
        created = force or not _usable(cert_path, key_path, application_uri, names, renew_days)
        if created:
            key = generate_private_key()
            alt: list[x509.GeneralName] = [x509.UniformResourceIdentifier(application_uri)]
            alt += [x509.DNSName(h) for h in names]
            cert = generate_self_signed_app_certificate(
                key, "plantctl client", {"organizationName": "plantctl"}, alt,
                extended=[ExtendedKeyUsageOID.CLIENT_AUTH], days=days,
            )
            # key first: a certificate is never on disk without its key
            _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
            _write_public(cert_path, cert.public_bytes(serialization.Encoding.DER))
        der = cert_path.read_bytes()
        cert = x509.load_der_x509_certificate(der)
    except OSError as exc:
        raise CertError(f"{d}: cannot write the certificate: {exc.strerror or exc}") from exc
    return ClientIdentity(cert_path, key_path, application_uri, names, cert.not_valid_after_utc,
                          _fingerprint(der, "sha1"), _fingerprint(der, "sha256"), created)


def _sim_trust_dir() -> Path:
    # sim_plc.runner.default_cert_dir(), spelled out: plantctl does not import the simulator.
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "plantctl" / "sim-pki" / "trusted"


def _cmd_init(args: argparse.Namespace) -> int:
    try:
        ident = init_client_certificate(args.dir, args.app_uri, args.host or None, days=args.days, force=args.force)
        trusted: Path | None = None
        if args.trust_dir:
            # named by thumbprint: a PLC trusts several controllers, each copy must keep its own file
            trusted = Path(args.trust_dir) / f"plantctl-client-{ident.sha1.replace(':', '')[:16].lower()}.der"
            trusted.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ident.cert, trusted)
    except (CertError, OSError) as exc:
        print(f"plantctl certs: {exc}", file=sys.stderr)
        return 2
    state = "created" if ident.created else "kept (already valid; --force makes a new one)"
    print(f"OPC-UA client certificate {state}")
    print(f"  certificate   {ident.cert}")
    print(f"  private key   {ident.key}  (mode 0600; it never leaves this machine)")
    print(f"  names         {ident.application_uri}, DNS {', '.join(ident.hosts)}")
    print(f"  valid until   {ident.not_after.isoformat(timespec='seconds')}")
    print(f"  SHA-1         {ident.sha1}  (the thumbprint a PLC lists)")
    print(f"  SHA-256       {ident.sha256}")
    if socket.gethostname() not in ident.hosts:
        print(f"  warning: this machine ({socket.gethostname()}) is not named: a controller started here replaces "
              "the certificate; run `plantctl certs init` on the controller's own host")
    print("Trust it on every PLC this controller reads over OPC-UA: copy the certificate into the server's")
    print("trusted-certificates list (the simulator's is <sim cert dir>/trusted/, by default")
    print(f"{_sim_trust_dir()}/), and point each station at this folder in the site file:")
    print(f"  plc: {{protocol: opcua, cert_dir: {Path(args.dir).resolve()}, ...}}")
    if trusted is not None:
        print(f"Copied to {trusted}.")
    return 0


def add_cli(subparsers: Any) -> None:
    """Register ``plantctl certs init``."""
    p = subparsers.add_parser(
        "certs",
        help="the controller's OPC-UA client certificate",
        description="Create the controller's OPC-UA application instance certificate (Basic256Sha256 "
        "sign-and-encrypt needs one) and say where to trust it.",
    )
    sub = p.add_subparsers(dest="certs_command", metavar="ACTION", required=True)
    i = sub.add_parser("init", help="create the client certificate and key (kept when already valid)")
    i.add_argument("--dir", required=True, help="folder for the certificate and key (the site's cert_dir)")
    i.add_argument("--app-uri", default=DEFAULT_APPLICATION_URI,
                   help=f"application URI the driver connects with (default {DEFAULT_APPLICATION_URI})")
    i.add_argument("--host", action="append", default=[],
                   help="a DNS name of the controller's host (repeat; default: this machine's name)")
    i.add_argument("--days", type=int, default=365, help="validity in days (default 365)")
    i.add_argument("--force", action="store_true", help="make a new key and certificate even if valid")
    i.add_argument("--trust-dir", default=None, help="also copy the certificate into this trust folder")
    i.set_defaults(func=_cmd_init)
