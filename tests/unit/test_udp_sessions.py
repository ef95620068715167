"""The sans-IO UDP session table: nginx's proxy_responses / proxy_timeout / proxy_requests, explicit `now`."""

from __future__ import annotations

from sheer.core.udp import UdpSessionTable

CLIENT = ("192.0.2.1", 5353)
OTHER = ("192.0.2.2", 5353)


def table(responses: int | None = 1, requests: int = 0, timeout: float = 1.0,
          capacity: int = 100) -> UdpSessionTable:
    return UdpSessionTable(timeout=timeout, capacity=capacity, responses=responses, requests=requests)


def test_proxy_responses_1_ends_after_one_response() -> None:
    t = table(responses=1)
    s = t.open(CLIENT, 0.0, io=None)
    assert t.lookup(CLIENT) is s
    assert t.request(s, 0.0) is False
    assert t.response(s, 0.1) is True


def test_proxy_responses_1_two_requests_need_two_responses() -> None:
    t = table(responses=1)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    assert t.request(s, 0.01) is False
    assert t.response(s, 0.02) is False
    assert t.response(s, 0.03) is True


def test_proxy_responses_2() -> None:
    t = table(responses=2)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    assert t.response(s, 0.1) is False
    assert t.response(s, 0.2) is True


def test_proxy_responses_0_ends_on_the_request() -> None:
    t = table(responses=0)
    s = t.open(CLIENT, 0.0, io=None)
    assert t.request(s, 0.0) is True


def test_unlimited_responses_end_only_by_timeout_and_not_as_failure() -> None:
    t = table(responses=None, timeout=30.0)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    for i in range(1, 50):
        assert t.response(s, i * 0.01) is False
    assert t.expire(30.48) == []
    expired = t.expire(30.49)
    assert [e.session for e in expired] == [s] and expired[0].failed is False
    assert len(t) == 0 and t.lookup(CLIENT) is None


def test_unlimited_responses_with_no_answer_is_not_a_failure() -> None:
    t = table(responses=None, timeout=1.0)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    assert [e.failed for e in t.expire(1.0)] == [False]


def test_timeout_with_missing_responses_is_a_failure() -> None:
    t = table(responses=1, timeout=1.0)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    assert t.expire(0.999) == []
    expired = t.expire(1.0)
    assert len(expired) == 1 and expired[0].session is s and expired[0].failed is True


def test_timeout_with_responses_complete_for_earlier_requests_only_is_a_failure() -> None:
    t = table(responses=1, timeout=1.0)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    t.request(s, 0.1)
    t.response(s, 0.2)
    assert [e.failed for e in t.expire(1.2)] == [True]


def test_proxy_requests_unbinds_the_client() -> None:
    t = table(responses=1, requests=2)
    s = t.open(CLIENT, 0.0, io=None)
    t.request(s, 0.0)
    assert t.lookup(CLIENT) is s
    assert t.request(s, 0.1) is False
    assert t.lookup(CLIENT) is None          # the next datagram opens a new session
    assert len(t) == 1                       # ... while this one waits for its responses
    s2 = t.open(CLIENT, 0.2, io=None)
    assert t.lookup(CLIENT) is s2 and len(t) == 2
    t.response(s, 0.3)
    assert t.response(s, 0.4) is True
    t.close(s)
    assert t.lookup(CLIENT) is s2            # closing the old session leaves the new binding alone
    assert len(t) == 1


def test_proxy_requests_keeps_the_session_while_fewer_datagrams_came() -> None:
    # nginx's ngx_stream_proxy_test_finalize: `proxy_requests 2; proxy_responses 1;` keeps a
    # client's first two datagrams on one session even when the first was answered in between
    t = table(responses=1, requests=2)
    s = t.open(CLIENT, 0.0, io=None)
    assert t.request(s, 0.0) is False
    assert t.response(s, 0.1) is False       # one answer for one request: not done, 1 < 2 requests
    assert t.lookup(CLIENT) is s             # the second datagram goes to the same session
    assert t.request(s, 0.2) is False
    assert t.lookup(CLIENT) is None
    assert t.response(s, 0.3) is True
    assert [e.failed for e in t.expire(5.0)] == [False]


def test_proxy_requests_1_with_responses_0() -> None:
    t = table(responses=0, requests=1)
    s = t.open(CLIENT, 0.0, io=None)
    assert t.request(s, 0.0) is True
    assert t.lookup(CLIENT) is None


def test_capacity() -> None:
    t = table(capacity=2)
    a = t.open(CLIENT, 0.0, io=None)
    assert not t.full
    t.open(OTHER, 0.0, io=None)
    assert t.full
    t.close(a)
    assert not t.full and len(t) == 1


def test_expiry_order_follows_touches() -> None:
    t = table(responses=None, timeout=10.0)
    a = t.open("a", 0.0, io=None)
    b = t.open("b", 1.0, io=None)
    c = t.open("c", 2.0, io=None)
    t.request(a, 3.0)                         # a is now the most recently active
    t.response(b, 4.0)
    assert [s.key for s in t] == ["c", "a", "b"]
    assert t.next_deadline() == 12.0
    assert [e.session for e in t.expire(12.0)] == [c]
    assert t.next_deadline() == 13.0
    assert [e.session for e in t.expire(20.0)] == [a, b]
    assert t.next_deadline() is None and len(t) == 0


def test_next_deadline_and_close() -> None:
    t = table(timeout=5.0)
    assert t.next_deadline() is None
    a = t.open("a", 1.0, io="flow-a")
    b = t.open("b", 2.0, io="flow-b")
    assert a.io == "flow-a"
    assert t.next_deadline() == 6.0
    t.close(a)
    assert t.next_deadline() == 7.0
    t.close(a)                                # closing twice is harmless
    t.close(b)
    assert t.next_deadline() is None


def test_sessions_keyed_by_client_and_local_address() -> None:
    t = table()
    one = t.open((CLIENT, "127.0.0.1"), 0.0, io=None)
    two = t.open((CLIENT, "127.0.0.2"), 0.0, io=None)
    assert one is not two
    assert t.lookup((CLIENT, "127.0.0.1")) is one and t.lookup((CLIENT, "127.0.0.2")) is two
