"""nginx's rate limits as sheer.core.rate works them out: whole seconds since the start, a pause after
each transfer, limit_rate_after, datagrams never split."""

from __future__ import annotations

import pytest

from sheer.config.template import STREAM_VARIABLES, compile_template
from sheer.core.rate import DatagramLimit, RateLimit, evaluate, size


def test_first_second_allows_the_rate() -> None:
    limit = RateLimit(1000, start=100.7)
    assert limit.allowance(0, now=100.9) == 1000
    assert limit.allowance(400, now=100.9) == 600
    assert limit.allowance(1000, now=100.9) == 0


def test_each_second_begun_adds_the_rate() -> None:
    limit = RateLimit(1000, start=100.7)
    # 101.0 is the second second begun (nginx's ngx_time() - start_sec + 1 == 2)
    assert limit.allowance(1000, now=101.0) == 1000
    assert limit.allowance(2500, now=102.2) == 500


def test_wait_when_ahead_as_nginx() -> None:
    limit = RateLimit(250, start=0.0)
    allowance = limit.allowance(500, now=0.5)        # 250 bytes ahead
    assert allowance == -250
    assert limit.wait(allowance) == pytest.approx(1.001)     # -limit * 1000 / rate + 1 ms
    assert limit.wait(0) == pytest.approx(0.001)


def test_pause_after_each_transfer() -> None:
    limit = RateLimit(250, start=0.0)
    assert limit.pause(0, 250) == pytest.approx(1.0)
    assert limit.pause(250, 375) == pytest.approx(0.5)
    assert limit.pause(0, 1) == pytest.approx(0.004)     # 1 * 1000 / 250 ms
    assert RateLimit(1, 0.0).pause(0, 1) == pytest.approx(1.0)


def test_pause_rounds_to_milliseconds_down() -> None:
    assert RateLimit(3000, 0.0).pause(0, 1) == 0.0   # nginx: 1 * 1000 / 3000 == 0 ms: no pause
    assert RateLimit(3000, 0.0).pause(0, 4) == pytest.approx(0.001)


def test_limit_rate_after_is_free() -> None:
    limit = RateLimit(100, start=0.0, after=256)
    assert limit.allowance(256, now=0.2) == 100      # the first 256 bytes do not count
    assert limit.allowance(0, now=0.2) == 356
    assert limit.pause(0, 256) == 0.0
    assert limit.pause(200, 306) == pytest.approx(0.5)  # only the 50 bytes past 256


def test_size_parses_as_ngx_parse_size() -> None:
    assert size("500") == 500
    assert size("12k") == 12 * 1024
    assert size("1M") == 1024 * 1024
    assert size("2g") == 2 * 1024**3
    assert size("") is None
    assert size("1.5k") is None
    assert size("-1") is None
    assert size("10x") is None


class Vars:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def variable(self, name: str) -> str:
        return self.values.get(name, "")


def test_evaluate_literal_and_template() -> None:
    assert evaluate(0, Vars({})) == (0, None)
    assert evaluate(1011, Vars({})) == (1011, None)
    template = compile_template("${server_port}k", None, STREAM_VARIABLES)
    assert evaluate(template, Vars({"server_port": "2"})) == (2048, None)
    assert evaluate(template, Vars({"server_port": "x"})) == (0, 'invalid size "xk"')
    alone = compile_template("$server_port", None, STREAM_VARIABLES)
    assert evaluate(alone, Vars({})) == (0, 'invalid size ""')


def test_datagram_passes_whole_then_pauses() -> None:
    limit = DatagramLimit(500, start=10.0)
    assert limit.admits(10.0)
    limit.passed(1000, 10.0)                       # twice the rate: never split
    assert limit.until == pytest.approx(12.0)
    assert not limit.admits(10.5)
    assert not limit.admits(11.99)
    assert limit.admits(12.0)                      # 500 * 3 - 1000 > 0


def test_datagram_waits_when_ahead() -> None:
    limit = DatagramLimit(1000, start=0.0)
    limit.passed(1500, 0.0)
    limit.until = 0.0                              # pause over, but 500 bytes ahead of the first second
    assert not limit.admits(0.9)                   # 1000 * 1 - 1500 = -500: wait 501 ms
    assert limit.until == pytest.approx(0.9 + 0.501)
    assert limit.admits(1.5)                       # the second second: 2000 - 1500 > 0
