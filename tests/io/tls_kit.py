"""Certificates made at test time (trustme) and a small blocking TLS client, for the TLS io tests."""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass
class Files:
    ca: Path
    cert: Path
    key: Path


def issue(ca: trustme.CA, directory: Path, name: str, *identities: str,
          key_type: trustme.KeyType = trustme.KeyType.ECDSA, **kw: object) -> Files:
    """A leaf certificate (chain) and its key as files, mode 600 like a real key."""
    leaf = ca.issue_cert(*(identities or (name,)), key_type=key_type, **kw)  # type: ignore[arg-type]
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    key.chmod(0o600)
    ca_path = directory / f"ca-{id(ca)}.pem"
    ca_path.write_bytes(ca.cert_pem.bytes())
    return Files(ca_path, cert, key)


def client_context(ca: Path | None = None, cert: Files | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca) if ca else None)
    if cert is not None:
        ctx.load_cert_chain(str(cert.cert), str(cert.key))
    return ctx


def connect(port: int, name: str, ctx: ssl.SSLContext, host: str = "127.0.0.1",
            session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    sock = socket.create_connection((host, port), timeout=5)
    try:
        return ctx.wrap_socket(sock, server_hostname=name, session=session)
    except BaseException:
        sock.close()
        raise


def get(tls: ssl.SSLSocket, path: str = "/", host: str = "") -> bytes:
    """One request, Connection: close; the whole answer."""
    name = host or tls.server_hostname or "localhost"
    tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
    data = b""
    while True:
        try:
            chunk = tls.recv(65536)
        except (ssl.SSLZeroReturnError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def body(answer: bytes) -> str:
    return answer.partition(b"\r\n\r\n")[2].decode()


def https(port: int, name: str, ctx: ssl.SSLContext, path: str = "/",
          session: ssl.SSLSession | None = None) -> tuple[str, ssl.SSLSession | None, bool]:
    """Body, the session to resume next time, and whether this one was resumed."""
    with connect(port, name, ctx, session=session) as tls:
        answer = get(tls, path)
        return body(answer), tls.session, tls.session_reused
