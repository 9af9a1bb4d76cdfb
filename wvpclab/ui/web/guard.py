"""Who may use a lab's web page: the holder of the run's token, on this machine, by the page itself.

- Served to the loopback names alone: ``Host`` is exactly 127.0.0.1, localhost or [::1], with or
  without a ``:PORT`` of digits (any port: an ssh tunnel may forward another), and nothing else
  (not ``[::1].evil.test``, not ``localhost.``): a web site that makes its own name resolve to
  127.0.0.1 (DNS rebinding) is refused.
- The page and its two files are read with the token in the address (``?token=``, as wvpclab
  printed it; the page names its files with it); everything its script asks (``/api/...``),
  reads and changes alike, carries the token in the ``X-Wvpclab-Token`` header. No cookie: a
  browser would send one to every server on 127.0.0.1, whatever its port.
- A change (POST) needs that header, which only the page's own script sends (a form or a link on
  another site cannot set it, nor read the page to learn it), a JSON body, and no ``Origin`` but
  the page's own.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping

HEADER = "x-wvpclab-token"
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
_LOOPBACK_HOST = re.compile(r"(?:127\.0\.0\.1|localhost|\[::1\])(?::[0-9]{1,5})?", re.IGNORECASE)


def loopback_host(host: str) -> bool:
    """True when a ``Host`` header names this machine's loopback exactly: 127.0.0.1, localhost or
    [::1], with or without ``:PORT`` (digits), nothing before or after."""
    return _LOOPBACK_HOST.fullmatch(host) is not None


def refusal(method: str, path: str, headers: Mapping[str, str], query_token: str | None,
            token: str) -> tuple[int, str] | None:
    """None when the request may be served; else (HTTP status, why) for the person who sent it.
    ``headers``: lower-case names."""
    host = headers.get("host", "")
    if not loopback_host(host):
        return 403, (f"this lab's page answers to 127.0.0.1 and localhost only, not to "
                     f"{host or 'a request without a Host header'}")
    if method not in ("GET", "HEAD", "POST"):
        return 405, f"{method} is not served here (GET to read, POST to change)"
    api = path.startswith("/api/")
    given = headers.get(HEADER) if api else query_token
    if given is None or not secrets.compare_digest(given.encode(), token.encode()):
        if api:
            return 403, ("the page's token is wrong or missing (the X-Wvpclab-Token header): "
                         "reload the page from the address wvpclab printed")
        return 403, ("this lab's page needs its token: open the address wvpclab printed "
                     "when the page started (http://127.0.0.1:PORT/?token=...); `web` at the "
                     "lab's prompt prints it again")
    if method != "POST":
        return None
    if not api:
        return 405, "POST is for the page's changes (/api/...)"
    origin = headers.get("origin")
    if origin is not None and origin != f"http://{host}":
        return 403, (f"cross-site request refused: a change may come from the page itself, "
                     f"not from {origin}")
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return 415, "a change is a JSON body (Content-Type: application/json)"
    return None
