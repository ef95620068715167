"""`make nginx-tests` reads each file's TAP and Test::More's diagnostics: what counts as passed, failed
and skipped, and the cause each failure is listed under."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nginx_tests"))

import report
import tap

RAN = """1..6
ok 1 - hash
not ok 2 - hash consistent
ok 3 # skip no ipv6
not ok 4 - new thing # TODO not yet
ok 5 - no alerts
ok 6 - no sanitizer errors
"""
RAN_ERR = """#   Failed test 'hash consistent'
#   at stream_upstream_hash.t line 95.
#          got: '8082'
#     expected: '8081'
#   Failed (TODO) test 'new thing'
#   at stream_upstream_hash.t line 99.
#          got: undef
#     expected: 'x'
# Looks like you failed 1 test of 6.
"""


def test_counts_and_reasons() -> None:
    result = tap.parse("stream_upstream_hash.t", "sheer", RAN, RAN_ERR)
    assert (result.count("pass"), result.count("fail"), result.count("skip")) == (1, 2, 1)
    failed = [test for test in result.subtests if test.status == "fail"]
    assert failed[0].reason == "got: '8082' expected: '8081'"
    assert failed[1].todo
    assert failed[1].reason == "got: undef expected: 'x' (marked TODO by the test: not yet)"
    assert result.died is None
    assert report.cause_of(failed[0]) == "answer differs from nginx's"
    assert report.cause_of(failed[1]).startswith("fails where the test itself says TODO")


def test_a_refused_configuration_fails_every_planned_subtest() -> None:
    stdout = "1..30\nok 1 - no alerts\nok 2 - no sanitizer errors\n"
    stderr = ('sheer: [emerg] /tmp/nginx-test-X/nginx.conf:12: unknown directive "root"\n'
              "Can't start nginx at lib/Test/Nginx.pm line 415.\n# Looks like your test exited with 2.\n")
    result = tap.parse("proxy.t", "sheer", stdout, stderr)
    assert (result.count("pass"), result.count("fail")) == (0, 28)
    assert result.died == 'configuration refused: unknown directive "root"'
    assert report.cause_of(result.subtests[0]) == result.died


def test_nginx_s_own_emerg_words_are_found_in_its_error_log() -> None:
    log = ('2026/12/07 03:57:48 [emerg] 12#12: unknown directive "frobnicate" in '
           "/tmp/nginx-test-X/nginx.conf:9\n")
    result = tap.parse("x.t", "nginx", "1..4\n", "Can't start nginx at lib/Test/Nginx.pm line 415.\n", log)
    assert result.died == 'configuration refused: unknown directive "frobnicate"'
    assert result.count("fail") == 2


def test_a_file_that_died_before_its_plan_takes_the_other_binary_s() -> None:
    sheer = tap.parse("upstream_keepalive.t", "sheer", "",
                      'sheer: [emerg] x.conf:1: unknown directive "root"\n')
    all_ok = "".join(f"ok {n} - t{n}\n" for n in range(1, 14))
    nginx = tap.parse("upstream_keepalive.t", "nginx", "1..13\n" + all_ok, "")
    assert sheer.count("fail") == 1
    tap.fill_unplanned(sheer, nginx)
    assert (sheer.count("fail"), nginx.count("pass")) == (11, 13)


def test_alerts_count_only_when_they_fail() -> None:
    stdout = "1..3\nok 1 - t\nnot ok 2 - no alerts\nok 3 - no sanitizer errors\n"
    stderr = ("#   Failed test 'no alerts'\n#   at lib/Test/Nginx.pm line 93.\n"
              "#          got: '... [alert] x'\n")
    result = tap.parse("a.t", "sheer", stdout, stderr)
    assert (result.count("pass"), result.count("fail")) == (1, 1)
    assert report.cause_of(result.subtests[1]) == "[alert] lines in the error log"


def test_whole_file_skips() -> None:
    skipped = tap.parse("rewrite.t", "sheer", "1..0 # SKIP no rewrite available\n", "")
    assert skipped.module_skip and skipped.skip_all == "no rewrite available" and not skipped.subtests
    daemon = tap.parse("x.t", "sheer", "1..0 # SKIP memcached not found\n", "")
    assert daemon.skip_all == "memcached not found" and not daemon.module_skip


def test_killed_file() -> None:
    result = tap.parse("slow.t", "sheer", "1..5\nok 1 - a\n", "", timed_out=True)
    assert result.died == "the file ran out of time (killed)"
    assert (result.count("pass"), result.count("fail")) == (1, 2)


def test_report_lists_claimed_files_and_causes() -> None:
    results = [tap.parse("a.t", "sheer", RAN, RAN_ERR),
               tap.parse("a.t", "nginx", RAN.replace("not ok", "ok"), ""),
               tap.parse("b.t", "sheer", "1..0 # SKIP no rewrite available\n", ""),
               tap.parse("b.t", "nginx", "1..0 # SKIP no rewrite available\n", "")]
    text = report.render(results, {"a.t": [], "b.t": ["rewrite"]}, suite_commit="76bb761c",
                         sheer_commit="abc", nginx_version="1.22.1", elapsed=60, jobs=2, subset="all",
                         lab="sheerx")
    assert "| a.t | 1 | 2 | 1 | 3 | 0 | 1 |" in text
    assert "| b.t |" not in text and "- rewrite (1): b.t" in text
    assert "### answer differs from nginx's: 1 subtests in 1 files" in text
    assert "- a.t, \"hash consistent\": got: '8082' expected: '8081'" in text
    assert "## Why nginx 1.22 fails" in text and "It does not." in text


def test_a_try_run_skip_is_a_refusal_when_the_other_binary_ran_the_file() -> None:
    sheer = tap.parse("http_max_headers.t", "sheer", "1..0 # SKIP no max_headers\n", "",
                      '2026/12/07 [emerg] 1#1: unknown directive "max_headers" in /t/nginx.conf:3\n')
    nginx = tap.parse("http_max_headers.t", "nginx", "1..4\nok 1 - a\nok 2 - b\nok 3 - no alerts\n"
                      "ok 4 - no sanitizer errors\n", "")
    tap.fill_unplanned(sheer, nginx)
    assert sheer.skip_all is None and sheer.count("fail") == 2
    assert sheer.died == ('configuration refused: unknown directive "max_headers" '
                          '(the test skips itself: "no max_headers")')


def test_like_failures_say_what_was_wanted() -> None:
    stdout = "1..3\nnot ok 1 - status\n"
    stderr = ("#   Failed test 'status'\n#   at proxy.t line 9.\n#                   'HTTP/1.1 200 OK\n"
              "# Connection: close\n# '\n#     doesn't match '(?^:502 Bad)'\n")
    result = tap.parse("proxy.t", "sheer", stdout, stderr)
    assert result.subtests[0].reason == "wanted /502 Bad/, got 'HTTP/1.1 200 OK Connection: close '"
