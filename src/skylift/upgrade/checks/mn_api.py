"""API calls in flight on the management node: advise a quiet time."""

import httpx

from skylift.engine.checks import Issue, Severity, check
from skylift.mn.launch import mn_client


@check("api-calls-in-flight", "No API calls are in flight", severity=Severity.WARNING,
       remedy="run the upgrade at a quiet time: the MN API answers 'upgrade in progress' "
              "while the MN is upgraded")
def api_calls_in_flight(ctx):
    try:
        with mn_client(ctx.mn_url, ctx.mn_token, timeout=5) as client:
            resp = client.get("/v1/api-calls")
    except httpx.HTTPError as exc:
        return Issue(f"the management node at {ctx.mn_url} does not answer ({exc})",
                     severity=Severity.INHIBITOR,
                     remedy="start the management node (skylift mn serve) and run again")
    if resp.status_code == 503:
        return Issue("the management node is in maintenance mode: no API calls are served",
                     severity=Severity.INFO, remedy="")
    if resp.status_code != 200:
        return Issue(f"cannot list API calls in flight: HTTP {resp.status_code}",
                     severity=Severity.INFO, remedy="")
    calls = resp.json().get("calls", resp.json() if isinstance(resp.json(), list) else [])
    calls = [c for c in calls if "/v1/api-calls" not in str(c.get("path", ""))]
    if calls:
        listed = ", ".join(f"{c.get('method')} {c.get('path')}" for c in calls[:5])
        return f"{len(calls)} API calls in flight: {listed}"
    return None
