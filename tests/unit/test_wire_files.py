"""Worker TLS files are parsed when read: a wrong one is named, not found at the bind.

grpcio takes any bytes as a certificate; a worker given a key that is not PEM
used to fail at its bind, saying its port was taken.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme

from duplex_protocol.wire import WireConfigError, WireSecurity


def _files(tmp_path: Path) -> tuple[trustme.CA, Path, Path, Path]:
    ca = trustme.CA()
    cert, key, ca_file = tmp_path / "w.crt", tmp_path / "w.key", tmp_path / "ca.crt"
    issued = ca.issue_cert("duplex-tts-worker")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, cert, key, ca_file


def test_a_certificate_its_key_and_a_ca_load(tmp_path: Path) -> None:
    _, cert, key, ca_file = _files(tmp_path)
    security = WireSecurity.load(cert_file=cert, key_file=key, ca_file=ca_file, env={})
    assert security.tls
    assert security.key == key.read_bytes()


@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        ("key junk", "are not a PEM certificate and its own unencrypted key"),
        ("another's key", "are not a PEM certificate and its own unencrypted key"),
        ("cert junk", "are not a PEM certificate and its own unencrypted key"),
        ("ca junk", "holds no PEM CA certificate"),
    ],
)
def test_a_file_that_is_not_what_it_should_be_is_named(
    tmp_path: Path, spoil: str, says: str
) -> None:
    ca, cert, key, ca_file = _files(tmp_path)
    if spoil == "key junk":
        key.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    elif spoil == "another's key":
        ca.issue_cert("duplex-tts-worker").private_key_pem.write_to_path(str(key))
    elif spoil == "cert junk":
        cert.write_text("certainly not a certificate\n")
    else:
        ca_file.write_text("no CA here\n")
    with pytest.raises(WireConfigError, match=says) as bad:
        WireSecurity.load(cert_file=cert, key_file=key, ca_file=ca_file, env={})
    named = str(ca_file) if spoil == "ca junk" else f"{cert} and {key}"
    assert named in str(bad.value)
