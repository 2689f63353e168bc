#!/usr/bin/env python3
"""verify_http_endpoint: request a URL once and compare its status with the expected one.

Prints {"url", "status_code", "expected_status", "ok", "latency_ms", "metrics": {...}}; exits 0 when the
status is the expected one, 1 otherwise (also when the request fails: status_code null). Redirects are
not followed (a 3xx is the answer) and no proxy from the environment is used.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from _opsr import emit, fail, parser


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--url", required=True)
    arguments.add_argument("--expected_status", type=int, default=200)
    arguments.add_argument("--timeout_seconds", type=float, default=10.0)
    args = arguments.parse_args()
    if urlsplit(args.url).scheme not in ("http", "https"):
        fail(f"only http and https URLs are checked, not {args.url!r}", 2)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        args.url, headers={"User-Agent": "OpsResponder-verify"}
    )
    started = time.monotonic()
    status: int | None = None
    error = None
    try:
        with opener.open(request, timeout=args.timeout_seconds) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
        e.close()
    except (urllib.error.URLError, OSError, ValueError) as e:
        error = str(getattr(e, "reason", e))
    latency = round((time.monotonic() - started) * 1000, 1)
    ok = status == args.expected_status
    answer: dict[str, Any] = {
        "url": args.url,
        "status_code": status,
        "expected_status": args.expected_status,
        "ok": ok,
        "latency_ms": latency,
        "metrics": {"latency_ms": latency, "ok": 1 if ok else 0},
    }
    if error is not None:
        answer["error"] = f"request failed: {error}"
    emit(answer, 0 if ok else 1)


if __name__ == "__main__":
    main()
