"""``plantctl certs init``: what it makes, when it keeps it, and that the OPC-UA driver keeps it too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography import x509

from plantctl.certs import CERT_FILE, KEY_FILE, init_client_certificate
from plantctl.cli import main
from plantctl.fieldbus.opcua import CERT_FILE as DRIVER_CERT
from plantctl.fieldbus.opcua import CLIENT_APPLICATION_URI, ensure_client_certificate
from plantctl.fieldbus.opcua import KEY_FILE as DRIVER_KEY


def _names(path: Path) -> tuple[list[str], list[str]]:
    san = x509.load_der_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.UniformResourceIdentifier), san.get_values_for_type(x509.DNSName)


def test_the_driver_file_names_and_uri_are_the_ones_certs_writes() -> None:
    assert (CERT_FILE, KEY_FILE) == (DRIVER_CERT, DRIVER_KEY)
    assert init_client_certificate.__defaults__ is not None and CLIENT_APPLICATION_URI in init_client_certificate.__defaults__


def test_init_makes_keeps_forces_and_repairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "pki"
    first = init_client_certificate(d, hosts=["ctrl-01", "ctrl-01.plant.local"])
    assert first.created and first.cert == d / CERT_FILE and first.key == d / KEY_FILE
    assert (d / KEY_FILE).stat().st_mode & 0o777 == 0o600
    uris, dns = _names(first.cert)
    assert uris == [CLIENT_APPLICATION_URI] and dns == ["ctrl-01", "ctrl-01.plant.local"]
    der = first.cert.read_bytes()
    again = init_client_certificate(d, hosts=["ctrl-01", "ctrl-01.plant.local"])
    assert not again.created and first.cert.read_bytes() == der and again.sha1 == first.sha1
    # a host it does not name yet, or another URI: a new certificate
    assert init_client_certificate(d, hosts=["ctrl-02"]).created
    assert init_client_certificate(d, "urn:site-a:plantctl", hosts=["ctrl-02"]).created
    assert _names(d / CERT_FILE)[0] == ["urn:site-a:plantctl"]
    # a key that does not belong to the certificate: a new pair
    (d / KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
    assert init_client_certificate(d, "urn:site-a:plantctl", hosts=["ctrl-02"]).created
    kept = (d / CERT_FILE).read_bytes()
    assert main(["certs", "init", "--dir", str(d), "--app-uri", "urn:site-a:plantctl", "--host", "ctrl-02", "--force"]) == 0
    assert (d / CERT_FILE).read_bytes() != kept
    assert "created" in capsys.readouterr().out


def test_the_driver_keeps_a_certs_init_certificate(tmp_path: Path) -> None:
    """A certificate the PLC already trusts must survive the controller's start (which makes one only
    when it is missing or does not fit this machine)."""
    ident = init_client_certificate(tmp_path)  # default host: this machine
    der = ident.cert.read_bytes()
    asyncio.run(ensure_client_certificate(tmp_path))
    assert ident.cert.read_bytes() == der
