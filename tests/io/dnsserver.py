"""A tiny DNS server for the io tests, on a loopback address and a high port, UDP and TCP: names
and their A/AAAA records with a TTL that a test changes while it runs, and ways to misbehave
(stay silent, truncate UDP answers, send forged or broken datagrams before the real answer).
Nothing ever goes to an outside resolver: sheer is told to ask this server with `resolver`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

Forge = Callable[[dns.message.Message, bytes], list[bytes]]


class DnsServer:
    def __init__(self, host: str = "127.0.0.53", port: int = 0, ttl: int = 1) -> None:
        self.host = host
        self.ttl = ttl
        self.records: dict[str, list[str]] = {}       # name -> addresses (A and AAAA)
        self.silent = False                          # drop every question (a resolver that never answers)
        self.truncate = False                        # UDP answers carry TC and no records: ask over TCP
        self.forge: Forge | None = None              # datagrams sent before the real UDP answer
        self.rcode: int | None = None                # answer every question with this rcode (FORMERR...)
        self.asked: list[tuple[str, str, str]] = []  # (name, type, "udp"|"tcp")
        self.lock = threading.Lock()
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((host, port))
        self.port = int(self.udp.getsockname()[1])
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind((host, self.port))
        self.tcp.listen(16)
        self.threads = [threading.Thread(target=self._serve_udp, daemon=True),
                        threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self.threads:
            thread.start()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def set(self, name: str, *addresses: str) -> None:
        with self.lock:
            if addresses:
                self.records[name] = list(addresses)
            else:
                self.records.pop(name, None)

    def questions(self, name: str) -> int:
        with self.lock:
            return sum(1 for asked, _, _ in self.asked if asked == name)

    def answer(self, query: dns.message.Message, proto: str) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        kind = dns.rdatatype.to_text(question.rdtype)
        with self.lock:
            self.asked.append((name, kind, proto))
            addresses = self.records.get(name)
        if self.rcode is not None:
            response.set_rcode(self.rcode)
            return response
        if addresses is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response
        wanted = [a for a in addresses if (":" in a) == (question.rdtype == dns.rdatatype.AAAA)]
        if wanted:
            response.answer.append(dns.rrset.from_text_list(question.name, self.ttl, "IN", kind, wanted))
        return response

    def _serve_udp(self) -> None:
        while True:
            try:
                data, peer = self.udp.recvfrom(65535)
            except OSError:
                return
            if data == b"\x00stop":
                return
            try:
                query = dns.message.from_wire(data)
            except Exception:  # noqa: BLE001, S112 -- a test server ignores what it cannot read
                continue
            response = self.answer(query, "udp")      # recorded even when it goes unanswered
            if self.silent:
                continue
            for forged in (self.forge(query, data) if self.forge else []):
                self.udp.sendto(forged, peer)
            if self.truncate:
                response.answer.clear()
                response.flags |= dns.flags.TC
            self.udp.sendto(response.to_wire(), peer)

    def _serve_tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                try:
                    size = int.from_bytes(_exactly(conn, 2), "big")
                    query = dns.message.from_wire(_exactly(conn, size))
                    wire = self.answer(query, "tcp").to_wire()
                    if self.silent:
                        continue
                    conn.sendall(len(wire).to_bytes(2, "big") + wire)
                except (OSError, EOFError):
                    continue

    def close(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"\x00stop", (self.host, self.port))
        try:
            self.tcp.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.tcp.close()
        for thread in self.threads:
            thread.join(2)
        self.udp.close()


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


# --- forgeries -------------------------------------------------------------------------------

def wrong_id(query: dns.message.Message, _wire: bytes) -> list[bytes]:
    forged = dns.message.make_response(query)
    forged.id = (query.id + 1) % 65536
    forged.answer.append(dns.rrset.from_text(query.question[0].name, 300, "IN", "A", "127.0.0.99"))
    return [forged.to_wire()] if query.question[0].rdtype == dns.rdatatype.A else []


def wrong_question(query: dns.message.Message, _wire: bytes) -> list[bytes]:
    other = dns.message.make_query("evil.test", query.question[0].rdtype, use_edns=False)
    other.id = query.id
    forged = dns.message.make_response(other)
    return [forged.to_wire()]


def oversized(query: dns.message.Message, _wire: bytes) -> list[bytes]:
    forged = dns.message.make_response(query)
    if query.question[0].rdtype == dns.rdatatype.A:
        forged.answer.append(dns.rrset.from_text_list(query.question[0].name, 300, "IN", "A",
                                                      [f"127.0.1.{n}" for n in range(1, 60)]))
    return [forged.to_wire()]


def garbage(query: dns.message.Message, wire: bytes) -> list[bytes]:
    return [wire[:2] + b"\x81\x80" + b"\xff" * 20]
