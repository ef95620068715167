"""DNS messages of the run-time resolver, sans-IO: the queries for a name, whether bytes that
arrived are the answer to one of them, and what the answer says. dnspython builds and parses the
messages (no hand-written parser); the checks and their log lines are nginx's
(ngx_resolver_process_response, ngx_resolver_process_a).

An answer that is not the answer (wrong ID, another question, not a response, malformed, larger
than a UDP answer may be without EDNS) is ignored and the query keeps waiting: a forged datagram
must not end a resolution early. So is FORMERR (or an rcode above REFUSED), as in nginx: the
question is asked again of the next server at its resend. A truncated UDP answer (TC) asks again over TCP.
"""

from __future__ import annotations

from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

# dnspython imports a record type's code the first time it parses one; a worker or the helper
# that dropped to `user` may no longer read the interpreter's files, and would then get opaque
# records without addresses. So the types an answer is read through are loaded here, at import.
for _type in (dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.CNAME, dns.rdatatype.DNAME,
              dns.rdatatype.SOA):
    dns.rdata.get_rdata_class(dns.rdataclass.IN, _type)  # type: ignore[no-untyped-call]

# The answer of a UDP query without EDNS may be at most 512 bytes (RFC 1035 4.2.1); a larger
# one was truncated by nothing and is not what a server sends: forged or broken.
UDP_LIMIT = 512
TCP_LIMIT = 65535

# nginx's resolver codes: the DNS rcodes, and NGX_RESOLVE_TIMEDOUT (NGX_ETIMEDOUT).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
TIMEDOUT = 110
MAX_CNAMES = 50          # NGX_RESOLVER_MAX_RECURSION: names followed for one resolution

_ERRORS = {FORMERR: "Format error", SERVFAIL: "Server failure", NXDOMAIN: "Host not found",
           NOTIMP: "Unimplemented", REFUSED: "Operation refused"}


def strerror(code: int) -> str:
    """ngx_resolver_strerror: `app could not be resolved (3: Host not found)`."""
    if code == TIMEDOUT:
        return "Operation timed out"
    return _ERRORS.get(code, "Unknown error")


def queries(name: str, ipv4: bool, ipv6: bool) -> list[dns.message.QueryMessage]:
    """An A and an AAAA query (as the resolver's ipv4=/ipv6= say), each with its own random ID,
    recursion desired, no EDNS: what nginx sends."""
    qname = dns.name.from_text(name)
    types = [t for t, wanted in ((dns.rdatatype.A, ipv4), (dns.rdatatype.AAAA, ipv6)) if wanted]
    return [dns.message.make_query(qname, rdtype, use_edns=False) for rdtype in types]


@dataclass(frozen=True, slots=True)
class Accepted:
    response: dns.message.Message


@dataclass(frozen=True, slots=True)
class Truncated:
    """The UDP answer had TC set: ask the same server over TCP."""


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str           # nginx's wording where it has one, for the error log


Verdict = Accepted | Truncated | Ignored


def check(query: dns.message.Message, wire: bytes, *, tcp: bool) -> Verdict:
    """Is `wire` the answer to `query`? In nginx's order: size, header, flags, question, ID."""
    proto = "TCP" if tcp else "UDP"
    limit = TCP_LIMIT if tcp else UDP_LIMIT
    if len(wire) > limit:
        return Ignored(f"oversized {proto} DNS response of {len(wire)} bytes (at most {limit})")
    if len(wire) < 12:
        return Ignored("short DNS response")
    try:
        # one record per rrset: an answer's duplicate records stay, each a peer as in nginx's resolver
        response = dns.message.from_wire(wire, one_rr_per_rrset=True)
    except dns.exception.DNSException as exc:
        return Ignored(f"invalid {proto} DNS response {int.from_bytes(wire[:2], 'big')}: "
                       f"{exc.__class__.__name__}: {exc}")
    flags = response.flags
    ident = response.id
    if not flags & dns.flags.QR or dns.opcode.from_flags(flags) != dns.opcode.QUERY or (
            tcp and flags & dns.flags.TC):
        return Ignored(f"invalid {proto} DNS response {ident} fl:{int(flags):04X}")
    code = response.rcode()
    if code == FORMERR or code > REFUSED:
        # nginx ignores these (the question waits for its resend to the next server): a server that
        # did not understand the query says nothing about the name
        named = f', name:"{query.question[0].name.to_text(omit_final_dot=True)}"' if (
            code == FORMERR and ident == query.id) else ""
        return Ignored(f"DNS error ({code}: {strerror(code)}), query id:{ident}{named}")
    if len(response.question) != 1:
        # A server may answer FORMERR etc. without the question; the ID must still match.
        if response.rcode() != NOERROR and not response.question and ident == query.id:
            return Accepted(response)
        return Ignored("invalid number of questions in DNS response")
    asked = query.question[0]
    got = response.question[0]
    if got.name != asked.name or got.rdtype != asked.rdtype or got.rdclass != dns.rdataclass.IN:
        return Ignored(f"unexpected DNS response for {got.name.to_text(omit_final_dot=True)}")
    if ident != query.id:
        return Ignored(f"wrong ident {ident} in DNS response for {asked.name.to_text(omit_final_dot=True)}, "
                       f"expect {query.id}")
    if not query.is_response(response):       # dnspython's own test, the last word
        return Ignored(f"unexpected DNS response for {got.name.to_text(omit_final_dot=True)}")
    if flags & dns.flags.TC:
        return Truncated()
    return Accepted(response)


@dataclass(frozen=True, slots=True)
class Answer:
    """What one query's answer says: an rcode, the addresses, their smallest TTL, and the name a
    CNAME chain ended at when the answer stops there (to be asked next)."""

    code: int
    addresses: tuple[str, ...] = ()
    ttl: int | None = None           # None: no record gave one
    cname: str | None = None


def answer_of(response: dns.message.Message) -> Answer:
    """Follow the CNAMEs within the answer (dnspython's resolve_chaining), collect the addresses."""
    code = response.rcode()
    if code != NOERROR:
        return Answer(code)
    if not isinstance(response, dns.message.QueryMessage):
        return Answer(FORMERR)
    try:
        chain = response.resolve_chaining()
    except (dns.message.ChainTooLong, dns.exception.FormError, dns.message.NotQueryResponse):
        return Answer(FORMERR)
    if chain.answer is None:
        if chain.cnames:      # the chain leads to a name this answer does not resolve: ask for it
            return Answer(NOERROR, (), chain.minimum_ttl, chain.canonical_name.to_text(omit_final_dot=True))
        return Answer(NOERROR)     # the name exists, without this type of record
    records = [rrset for rrset in response.answer
               if rrset.name == chain.canonical_name and rrset.rdtype == chain.answer.rdtype]
    addresses = tuple(str(rdata.address) for rrset in records for rdata in rrset)
    return Answer(NOERROR, addresses, min(chain.minimum_ttl, *(rrset.ttl for rrset in records)))


@dataclass(frozen=True, slots=True)
class Resolution:
    """A name resolved (code 0 with addresses) or not (an rcode, or TIMEDOUT)."""

    code: int
    addresses: tuple[str, ...] = ()
    ttl: int = 0

    @property
    def ok(self) -> bool:
        return self.code == NOERROR


def cname_to_follow(answers: list[Answer]) -> str | None:
    """The name to ask next when the answers hold no address (ngx_resolver_process_a): the CNAME of
    the last answer (AAAA after A), not of an earlier one; a last answer without one ends the
    resolution (NXDOMAIN), whatever CNAME came before it. Addresses in either answer win over a
    CNAME in the other."""
    if not answers or not all(answer.code == NOERROR and not answer.addresses for answer in answers):
        return None
    return answers[-1].cname


def combine(answers: list[Answer]) -> Resolution:
    """The A and AAAA answers as one (ngx_resolver_process_a): an error in either is the result;
    no address in either is NXDOMAIN ("Host not found"); IPv4 addresses first."""
    for answer in answers:
        if answer.code != NOERROR:
            return Resolution(answer.code)
    addresses = tuple(address for answer in answers for address in answer.addresses)
    if not addresses:
        return Resolution(NXDOMAIN)
    ttls = [answer.ttl for answer in answers if answer.addresses and answer.ttl is not None]
    return Resolution(NOERROR, addresses, max(0, min(ttls)) if ttls else 0)
