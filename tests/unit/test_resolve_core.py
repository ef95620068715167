"""Run-time resolution, sans-IO: when a name is asked again (TTL, valid=, failures) on a fake
clock, which slots a new answer fills and frees, the per-request answer cache, and the checks
that keep forged or broken DNS answers out."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest

from sheer.core.resolve import NameCache, PeerSlots, changes_peers, next_attempt, valid_until
from sheer.core.resolve_wire import (
    NOERROR,
    NXDOMAIN,
    SERVFAIL,
    TIMEDOUT,
    Accepted,
    Answer,
    Ignored,
    Resolution,
    Truncated,
    answer_of,
    check,
    cname_to_follow,
    combine,
    queries,
    strerror,
)

OK = Resolution(NOERROR, ("10.0.0.1", "10.0.0.2"), ttl=5)


# --- when ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("resolution", "valid", "until"), [
    (OK, None, 105.0),                              # the TTL
    (OK, 30.0, 130.0),                              # valid= overrides it
    (OK, 0.0, 105.0),                               # valid=0 is unset, as in nginx
    (Resolution(NOERROR, ("10.0.0.1",), ttl=0), None, 100.0),
    (Resolution(NXDOMAIN), None, 110.0),            # "not found" stands 10s
    (Resolution(NXDOMAIN), 3.0, 103.0),
])
def test_how_long_an_answer_stands(resolution: Resolution, valid: float | None, until: float) -> None:
    assert valid_until(resolution, valid, now=100.0) == until


@pytest.mark.parametrize(("resolution", "valid", "timeout", "due"), [
    (OK, None, 30.0, 106.0),                        # a second after the answer stops standing
    (Resolution(NOERROR, ("10.0.0.1",), ttl=0), None, 30.0, 101.0),
    (OK, 1.0, 30.0, 102.0),
    (Resolution(NXDOMAIN), None, 30.0, 111.0),
    (Resolution(TIMEDOUT), None, 30.0, 130.0),      # a failure: again after resolver_timeout
    (Resolution(SERVFAIL), None, 0.2, 101.0),       # ... at least a second
])
def test_when_the_name_is_asked_again(resolution: Resolution, valid: float | None, timeout: float,
                                      due: float) -> None:
    assert next_attempt(resolution, valid, timeout, now=100.0) == due


def test_only_answers_and_nxdomain_change_the_peers() -> None:
    assert changes_peers(OK) and changes_peers(Resolution(NXDOMAIN))
    assert not changes_peers(Resolution(TIMEDOUT)) and not changes_peers(Resolution(SERVFAIL))


def test_a_schedule_on_a_fake_clock() -> None:
    """The resolver task's loop, with answers scripted and the clock moved by hand."""
    answers = [OK, Resolution(TIMEDOUT), Resolution(TIMEDOUT), Resolution(NOERROR, ("10.0.0.3",), 60),
               Resolution(NXDOMAIN)]
    now, asked, slots = 0.0, [], PeerSlots(4)
    peers = []
    for answer in answers:
        asked.append(now)
        if changes_peers(answer):
            slots.update(answer.addresses)
        peers.append(slots.addresses)
        now = next_attempt(answer, None, 2.0, now)
    assert asked == [0.0, 6.0, 8.0, 10.0, 71.0]
    assert peers == [("10.0.0.1", "10.0.0.2"), ("10.0.0.1", "10.0.0.2"), ("10.0.0.1", "10.0.0.2"),
                     ("10.0.0.3",), ()]


# --- slots -----------------------------------------------------------------------------------

def test_slots_keep_a_peer_where_it_is_and_reuse_the_longest_freed_last() -> None:
    slots = PeerSlots(4)
    changes = slots.update(["10.0.0.1", "10.0.0.2"])
    assert [(c.slot, c.address) for c in changes.added] == [(0, "10.0.0.1"), (1, "10.0.0.2")]
    assert not slots.update(["10.0.0.2", "10.0.0.1"])           # the same set, another order: nothing
    changes = slots.update(["10.0.0.2", "10.0.0.3"])
    assert [(c.slot, c.address) for c in changes.removed] == [(0, "10.0.0.1")]
    assert [(c.slot, c.address) for c in changes.added] == [(2, "10.0.0.3")]   # never used before slot 0
    slots.update(["10.0.0.3"])                                   # frees slot 1, after slot 0
    changes = slots.update(["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"])
    assert [(c.slot, c.address) for c in changes.added] == [(3, "10.0.0.4"), (0, "10.0.0.5"), (1, "10.0.0.6")]
    assert slots.slots == ["10.0.0.5", "10.0.0.6", "10.0.0.3", "10.0.0.4"]


def test_slots_say_what_did_not_fit() -> None:
    slots = PeerSlots(2, ["10.0.0.9"])                           # what the board held (a reload)
    changes = slots.update(["10.0.0.9", "10.0.0.1", "10.0.0.2"])
    assert [c.address for c in changes.added] == ["10.0.0.1"]
    assert changes.no_room == ("10.0.0.2",)
    assert slots.update([]).removed and slots.addresses == ()


# --- the per-request cache -------------------------------------------------------------------

def test_the_cache_keeps_answers_while_they_stand_and_the_most_recent_names() -> None:
    cache = NameCache(limit=2)
    cache.put("a", OK, until=10.0)
    assert cache.get("a", now=9.9) == OK
    assert cache.get("a", now=10.0) is None and len(cache) == 0
    cache.put("a", OK, 100.0)
    cache.put("b", OK, 100.0)
    cache.get("a", now=1.0)                       # a used last: b goes first
    cache.put("c", OK, 100.0)
    assert cache.get("b", 1.0) is None and cache.get("a", 1.0) == OK and cache.get("c", 1.0) == OK


# --- messages --------------------------------------------------------------------------------

def a_query() -> dns.message.QueryMessage:
    return queries("app.test", ipv4=True, ipv6=False)[0]


def reply(query: dns.message.Message, *addresses: str, ttl: int = 30) -> dns.message.Message:
    response = dns.message.make_response(query)
    if addresses:
        response.answer.append(dns.rrset.from_text_list(query.question[0].name, ttl, "IN",
                                                        "AAAA" if ":" in addresses[0] else "A",
                                                        list(addresses)))
    return response


def test_queries_are_nginx_s_a_and_aaaa_without_edns() -> None:
    both = queries("app.test", ipv4=True, ipv6=True)
    assert [q.question[0].rdtype for q in both] == [1, 28]
    assert all(q.edns < 0 and q.flags & dns.flags.RD for q in both)
    assert [q.question[0].rdtype for q in queries("app.test", ipv4=False, ipv6=True)] == [28]


def test_the_answer_is_accepted() -> None:
    query = a_query()
    verdict = check(query, reply(query, "10.0.0.1").to_wire(), tcp=False)
    assert isinstance(verdict, Accepted)
    assert answer_of(verdict.response) == Answer(NOERROR, ("10.0.0.1",), 30)


def forged(query: dns.message.Message, how: str) -> bytes:
    response = reply(query, "10.0.0.66")
    if how == "id":
        response.id = (query.id + 1) % 65536
    elif how == "name":
        other = dns.message.make_query("evil.test", "A", use_edns=False)
        other.id = query.id
        response = reply(other, "10.0.0.66")
    elif how == "type":
        other = dns.message.make_query("app.test", "MX", use_edns=False)
        other.id = query.id
        response = dns.message.make_response(other)
    elif how == "query":
        response.flags &= ~dns.flags.QR
    elif how == "big":
        response = reply(query, *[f"10.0.{n // 250}.{n % 250}" for n in range(40)])
    return response.to_wire()


@pytest.mark.parametrize(("how", "reason"), [
    ("id", "wrong ident"),
    ("name", "unexpected DNS response for evil.test"),
    ("type", "unexpected DNS response for app.test"),
    ("query", "invalid UDP DNS response"),
    ("big", "oversized UDP DNS response of"),
])
def test_forged_or_mismatched_answers_are_ignored_with_nginx_s_words(how: str, reason: str) -> None:
    query = a_query()
    verdict = check(query, forged(query, how), tcp=False)
    assert isinstance(verdict, Ignored) and verdict.reason.startswith(reason), verdict


def test_wrong_ident_names_both_ids() -> None:
    query = a_query()
    verdict = check(query, forged(query, "id"), tcp=False)
    assert isinstance(verdict, Ignored)
    wrong = (query.id + 1) % 65536
    assert verdict.reason == f"wrong ident {wrong} in DNS response for app.test, expect {query.id}"


def test_what_is_not_a_dns_message_is_ignored() -> None:
    query = a_query()
    assert check(query, b"\x00\x01", tcp=False) == Ignored("short DNS response")
    wire = query.to_wire()
    verdict = check(query, wire[:2] + b"\x81\x80" + b"\xff" * 20, tcp=False)
    assert isinstance(verdict, Ignored) and verdict.reason.startswith("invalid UDP DNS response")


def test_a_truncated_answer_is_asked_again_over_tcp_and_tcp_may_not_truncate() -> None:
    query = a_query()
    response = reply(query)
    response.flags |= dns.flags.TC
    assert check(query, response.to_wire(), tcp=False) == Truncated()
    verdict = check(query, response.to_wire(), tcp=True)
    assert isinstance(verdict, Ignored) and verdict.reason.startswith("invalid TCP DNS response")
    big = forged(query, "big")
    verdict = check(query, big, tcp=True)            # over TCP the same size is fine
    assert isinstance(verdict, Accepted) and len(answer_of(verdict.response).addresses) == 40


def test_a_server_error_without_the_question_is_still_its_answer() -> None:
    query = a_query()
    response = dns.message.make_response(query)
    response.question = []
    response.set_rcode(dns.rcode.SERVFAIL)
    verdict = check(query, response.to_wire(), tcp=False)
    assert isinstance(verdict, Accepted) and answer_of(verdict.response).code == SERVFAIL


def test_formerr_and_unknown_rcodes_are_ignored_as_nginx() -> None:
    """ngx_resolver_process_response: FORMERR (or an rcode above REFUSED) says nothing about the name;
    the question waits for its resend to the next server."""
    query = a_query()
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.FORMERR)
    assert check(query, response.to_wire(), tcp=False) == Ignored(
        f'DNS error (1: Format error), query id:{query.id}, name:"app.test"')
    response.set_rcode(dns.rcode.NOTAUTH)
    assert check(query, response.to_wire(), tcp=False) == Ignored(
        f"DNS error (9: Unknown error), query id:{query.id}")
    response.set_rcode(dns.rcode.REFUSED)          # a server's refusal is its answer
    assert isinstance(check(query, response.to_wire(), tcp=False), Accepted)


def test_cnames_are_followed_within_the_answer_or_asked_for() -> None:
    query = a_query()
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text("app.test.", 60, "IN", "CNAME", "real.test."))
    response.answer.append(dns.rrset.from_text("real.test.", 20, "IN", "A", "10.0.0.7"))
    assert answer_of(wired(response)) == Answer(NOERROR, ("10.0.0.7",), 20)    # the smallest TTL of the chain
    only = dns.message.make_response(query)
    only.answer.append(dns.rrset.from_text("app.test.", 60, "IN", "CNAME", "elsewhere.test."))
    assert answer_of(wired(only)) == Answer(NOERROR, (), 60, "elsewhere.test")


def wired(message: dns.message.Message) -> dns.message.Message:
    """As it arrives: parsed from the wire (what check() hands to answer_of)."""
    return dns.message.from_wire(message.to_wire())


def test_nxdomain_and_no_records() -> None:
    query = a_query()
    response = dns.message.make_response(query)
    response.set_rcode(dns.rcode.NXDOMAIN)
    assert answer_of(response) == Answer(NXDOMAIN)
    assert answer_of(dns.message.make_response(query)) == Answer(NOERROR)


def test_a_and_aaaa_make_one_resolution() -> None:
    a, aaaa = Answer(NOERROR, ("10.0.0.1",), 30), Answer(NOERROR, ("2001:db8::1",), 10)
    assert combine([a, aaaa]) == Resolution(NOERROR, ("10.0.0.1", "2001:db8::1"), 10)
    assert combine([a, Answer(NOERROR)]) == Resolution(NOERROR, ("10.0.0.1",), 30)
    assert combine([Answer(NOERROR), Answer(NOERROR)]) == Resolution(NXDOMAIN)   # no address at all
    assert combine([a, Answer(SERVFAIL)]) == Resolution(SERVFAIL)
    assert combine([Answer(TIMEDOUT), aaaa]) == Resolution(TIMEDOUT)


@pytest.mark.parametrize(("code", "text"), [(1, "Format error"), (2, "Server failure"), (3, "Host not found"),
                                            (4, "Unimplemented"), (5, "Operation refused"),
                                            (110, "Operation timed out"), (9, "Unknown error")])
def test_nginx_s_resolver_errors(code: int, text: str) -> None:
    assert strerror(code) == text


def test_which_cname_is_followed_when_no_answer_has_an_address() -> None:
    """ngx_resolver_process_a: the last answer's CNAME (AAAA after A); an empty last answer ends it."""
    alias4, alias6 = Answer(NOERROR, (), 60, "alias4.test"), Answer(NOERROR, (), 60, "alias6.test")
    assert cname_to_follow([alias4, alias6]) == "alias6.test"              # CNAME1 CNAME2
    assert cname_to_follow([alias4, Answer(NOERROR)]) is None             # CNAME, then zero: NXDOMAIN
    assert cname_to_follow([Answer(NOERROR), alias6]) == "alias6.test"
    assert cname_to_follow([alias4, Answer(NOERROR, ("2001:db8::1",), 30)]) is None   # an address wins
    assert cname_to_follow([alias4, Answer(SERVFAIL)]) is None
    assert cname_to_follow([alias4]) == "alias4.test"                     # ipv6=off: A alone


def test_duplicate_records_stay_each_a_peer() -> None:
    """nginx's resolver keeps every record of an answer, a repeated address too (each a peer, each a
    try: proxy_next_upstream_tries.t, stream_resolver.t)."""
    query = a_query()
    wire = bytearray(reply(query, "10.0.0.2", "10.0.0.1").to_wire())
    # dnspython merges equal records when it builds a message: repeat the first record on the wire
    records = [bytes(wire[-32:-16]), bytes(wire[-16:])]   # pointer, type, class, TTL, length, address
    record = next(r for r in records if r[-4:] == bytes([10, 0, 0, 2]))
    wire[7] += 1                                   # ANCOUNT 2 -> 3
    verdict = check(query, bytes(wire) + record, tcp=False)
    assert isinstance(verdict, Accepted)
    addresses = answer_of(verdict.response).addresses
    assert sorted(addresses) == ["10.0.0.1", "10.0.0.2", "10.0.0.2"] and addresses[-1] == "10.0.0.2"
