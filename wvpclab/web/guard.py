"""Who may use a lab's web page: the holder of the run's token, on this machine, by the page itself.

- Served to the loopback names alone (``Host`` 127.0.0.1, localhost or [::1], any port: an ssh
  tunnel may forward another): a web site that makes its own name resolve to 127.0.0.1 (DNS
  rebinding) is refused.
- A read (GET, HEAD) needs the token: ``?token=`` in the address wvpclab printed (the page then
  keeps it in a strict same-site cookie) or that cookie.
- A change (POST) needs the token in the ``X-Wvpclab-Token`` header, which only the page's own
  script sends (a form or a link on another site cannot set it, nor read the page to learn it), a
  JSON body, and no ``Origin`` but the page's own.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping

HEADER = "x-wvpclab-token"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")


def cookie_name(port: int) -> str:
    """The cookie of the page on ``port`` (cookies are not kept per port: two labs' pages on one
    machine keep one each)."""
    return f"wvpclab-token-{port}"


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if ":" in host else host


def refusal(method: str, headers: Mapping[str, str], query_token: str | None,
            cookie_token: str | None, token: str) -> tuple[int, str] | None:
    """None when the request may be served; else (HTTP status, why) for the person who sent it.
    ``headers``: lower-case names."""
    host = headers.get("host", "")
    if _host_name(host).lower() not in LOOPBACK:
        return 403, (f"this lab's page answers to 127.0.0.1 and localhost only, not to "
                     f"{host or 'a request without a Host header'}")
    if method in ("GET", "HEAD"):
        given = query_token if query_token is not None else cookie_token
        if given is None or not secrets.compare_digest(given.encode(), token.encode()):
            return 403, ("this lab's page needs its token: open the address wvpclab printed "
                         "when the page started (http://127.0.0.1:PORT/?token=...); `web` at the "
                         "lab's prompt prints it again")
        return None
    if method != "POST":
        return 405, f"{method} is not served here (GET to read, POST to change)"
    origin = headers.get("origin")
    if origin is not None and origin != f"http://{host}":
        return 403, (f"cross-site request refused: a change may come from the page itself, "
                     f"not from {origin}")
    given = headers.get(HEADER)
    if given is None or not secrets.compare_digest(given.encode(), token.encode()):
        return 403, "a change needs the page's token (the X-Wvpclab-Token header): wrong or missing"
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return 415, "a change is a JSON body (Content-Type: application/json)"
    return None
