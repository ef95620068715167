"""The rewrite module's answers (sheer.io.http.rewriting decides them): a `return`, a redirect, a 500."""

from __future__ import annotations

from sheer.core.http.rewrite import Outcome
from sheer.io.http.answers import Client, answer_code, answer_error
from sheer.io.http.logline import client_error
from sheer.io.http.request import Request
from sheer.io.http.rewriting import location_phase
from sheer.io.http.site import Plan


def rewrite(client: Client, request: Request, plan: Plan) -> Plan | None:
    """The rewrite module's part (sheer.io.http.rewriting): the plan that serves the request, or None
    once its return, redirect or error is answered."""
    result = request.answer
    if result is not None:           # the server's script answered
        request.answer = None
    else:
        found = location_phase(client, request, plan)
        if isinstance(found, Plan):
            return found
        result, plan = found, request.plan or plan
    if result.outcome is Outcome.ERROR:
        client_error(client, request, "error", result.text or "", None)
        answer_error(client, request, result.code, plan)
        return None
    text = result.text.encode("latin-1", "replace") if result.text is not None else None
    answer_code(client, request, plan, result.code, text)
    return None
