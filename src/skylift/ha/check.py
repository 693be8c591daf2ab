"""The VIP's health check: does the MN at this address serve its cloud?

    python -m skylift.ha.check --url https://198.18.94.11:8443 [--ca FILE] [--timeout 2]

keepalived runs it every few seconds on every MN (`vrrp_script`); the VIP lives only where it
exits 0. It exits 0 only when GET <url>/v1/version answers 200 with JSON whose "serving" is
true; 1 for anything else (refused, timeout, TLS failure, not serving, an answer that is not
the MN's), with one line on stderr saying which (the MN's "reason" when it does not serve);
2 for a usage mistake. An MN does not serve while it drains, while its Galera member is out
of quorum (skylift.mn.quorum), or when started with --maintenance; an MN in maintenance
because its database is of an older release does serve (during an upgrade it is what
answers). An older MN's answer has no "serving": then "mode" must be "normal".

HTTPS is checked against the cloud's CA: --ca FILE, else the CA of the MN's state folder
(`skylift.mn.https.client_verify`, SKYLIFT_HOME or /var/lib/skylift). The standard library
does the request: the check starts a fresh interpreter each time, so it imports little.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request

NORMAL = "normal"
HEALTHY, UNHEALTHY = 0, 1


def tls_context(url: str, ca: str | None) -> ssl.SSLContext | None:
    """How the check trusts the MN at url: None for plain HTTP, the given CA file, else the
    cloud's CA of this machine's MN state folder beside the system's roots."""
    if not url.startswith("https:"):
        return None
    if ca:
        ctx = ssl.create_default_context()
        ctx.load_verify_locations(cafile=ca)
        return ctx
    from skylift.config import skylift_home  # only without --ca: these imports cost time
    from skylift.mn.https import client_verify
    verify = client_verify(url, skylift_home())
    return verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()


def probe(url: str, ca: str | None = None, timeout: float = 2.0) -> tuple[bool, str]:
    """(healthy, why): whether the MN at url answers /v1/version with serving true (an
    older MN, without the field: in normal mode)."""
    target = url.rstrip("/") + "/v1/version"
    try:
        ctx = tls_context(url, ca)
        with urllib.request.urlopen(target, timeout=timeout, context=ctx) as resp:
            body = resp.read(65536)
    except urllib.error.HTTPError as exc:
        return False, f"{target} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{target} did not answer: {reason}"
    try:
        answer = json.loads(body)
        mode, serving = answer.get("mode"), answer.get("serving")
    except (ValueError, AttributeError):
        return False, f"{target} answered something that is not an MN's version"
    if serving is None:  # an MN of a release before the field
        if mode != NORMAL:
            return False, f"the MN at {url} is in mode {mode!r}, not {NORMAL!r}"
    elif serving is not True:
        return False, (f"the MN at {url} does not serve (mode {mode!r}): "
                       f"{answer.get('reason') or 'no reason given'}")
    return True, f"the MN at {url} serves in {mode} mode"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skylift.ha.check",
        description="Exit 0 only when the MN at --url serves (its /v1/version).")
    parser.add_argument("--url", required=True, help="the MN's own URL, https://ADDRESS:PORT")
    parser.add_argument("--ca", help="the cloud's CA certificate (PEM) to check HTTPS against")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds for the answer")
    parser.add_argument("--quiet", action="store_true", help="say nothing when healthy")
    args = parser.parse_args(argv)
    if not args.url.startswith(("http://", "https://")):
        parser.error(f"--url {args.url!r} is not an http:// or https:// URL")
    healthy, why = probe(args.url, args.ca, args.timeout)
    if not healthy:
        print(f"skylift.ha.check: unhealthy: {why}", file=sys.stderr)
    elif not args.quiet:
        print(f"skylift.ha.check: {why}", file=sys.stderr)
    return HEALTHY if healthy else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
