"""A bounded property-based fuzz of the MN's OpenAPI (schemathesis) against a real MN process:
every operation, with the admin token, its boundary cases (the coverage phase: lengths at and
past each limit, missing and mistyped fields, numbers at and past each bound) and a few random
bodies, paths and queries each, from a fixed seed. No answer may be a 5xx, carry a secret or
its hash, or show a traceback, and every one carries the security headers.

Left out: POST /v1/drain, which hands the cloud over (every later call is 503 by design,
tested in tests/mn). A host's address is fuzzed like any field, but the fuzz never sends the
MN to another machine: a generated address the MN would take (a valid host address) is sent
as 127.0.0.1, and the MN's agent port is a closed port, so adding the host ends at once in the
MN's documented answer for an agent that does not answer (502 AgentUnreachable) - the one
5xx allowed, and only there.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import schemathesis
import sqlalchemy as sa
from pydantic import TypeAdapter, ValidationError

from skylift.agent.launch import free_port
from skylift.db.engine import Database
from skylift.lab.seed import seed
from skylift.mn.api.fields import HostAddress
from skylift.mn.app import create_app
from skylift.mn.launch import start_mn, stop_mn
from skylift.mn.mode import RunMode
from skylift.mn.state import MnState

SEED = 20240611
EXAMPLES = 8  # random cases per operation, after its coverage cases
SECRET = re.compile(r'"(password[^"]*|[^"]*_hash|token[^"]*|secret[^"]*)"\s*:', re.I)
HEADERS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY",
           "referrer-policy": "no-referrer"}


@pytest.fixture(scope="module")
def mn(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mn-fuzz")
    db = Database.from_string(f"sqlite:///{folder / 'cloud.db'}")
    seed(db, "4.3.12", 1, 1)
    closed = free_port()  # nothing listens there: an agent "at" any address answers refused
    handle = start_mn(db.url.render_as_string(hide_password=False), port=free_port(),
                      agent_port=closed, env={"SKYLIFT_HOME": str(folder / "home")})
    try:
        yield handle
    finally:
        stop_mn(handle)


def mn_openapi() -> dict:
    """The OpenAPI of a normal-mode MN, from the MN's own app (built, never started), so the
    cases exist when pytest collects them; test_the_fuzzed_api_is_the_running_mns checks it is
    the one the running MN serves."""
    run = RunMode("normal", "4.3.12", "r4312a", "4.3.12", "the database is at the newest revision")
    state = MnState(db=Database.from_string("sqlite://"), engine=sa.create_engine("sqlite://"),
                    run=run, token="unused", node_root=Path("/nonexistent"))
    return create_app(state).openapi()


OPENAPI = mn_openapi()
schema = schemathesis.openapi.from_dict(OPENAPI, config=schemathesis.Config.from_dict({
    "seed": SEED,
    "generation": {"max-examples": EXAMPLES, "deterministic": True, "database": "none",
                   "no-shrink": True},
    "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
})).exclude(method="POST", path="/v1/drain")


def test_the_fuzzed_api_is_the_running_mns(mn):
    served = httpx.get(mn.url + "/openapi.json").json()
    assert served["paths"] == OPENAPI["paths"]
    assert served["components"] == OPENAPI["components"]


def _json(response) -> dict:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@schemathesis.check
def no_server_error(ctx, response, case) -> None:
    """No 5xx; adding a host whose agent does not answer is the MN's designed 502."""
    if response.status_code < 500:
        return
    if (case.operation.label == "POST /v1/hosts" and response.status_code == 502
            and _json(response).get("error") == "AgentUnreachable"):
        return
    raise AssertionError(f"{response.status_code} from {case.operation.label}: "
                         f"{(response.text or '')[:300]}")


@schemathesis.check
def no_secret_or_traceback(ctx, response, case) -> None:
    text = response.text or ""
    assert not SECRET.search(text), f"a secret's key in the answer: {SECRET.search(text)}"
    assert "Traceback" not in text, "a traceback in the answer"


@schemathesis.check
def security_headers(ctx, response, case) -> None:
    for key, value in HEADERS.items():
        assert response.headers.get(key) == [value] or response.headers.get(key) == value, key
    assert "default-src 'self'" in str(response.headers.get("content-security-policy"))


TAKEN = TypeAdapter(HostAddress)


def _stay_on_this_machine(case) -> None:
    """A host address the MN would take becomes 127.0.0.1 (see the module's docstring)."""
    body = case.body
    if case.operation.label != "POST /v1/hosts" or not isinstance(body, dict):
        return
    try:
        TAKEN.validate_python(body.get("management_ip"))
    except ValidationError:
        return  # refused with a 400 before any agent is asked: sent as generated
    body["management_ip"] = "127.0.0.1"


@schema.parametrize()
def test_the_mn_api_answers_every_generated_call_without_a_5xx(case, mn):
    _stay_on_this_machine(case)
    case.call_and_validate(base_url=mn.url, headers={"Authorization": f"Bearer {mn.token()}"},
                           checks=[no_server_error, no_secret_or_traceback, security_headers],
                           timeout=30)
