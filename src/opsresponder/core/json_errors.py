"""What decoding JSON from outside can raise for a malformed document.

msgspec raises `UnicodeDecodeError`, not `msgspec.DecodeError`, for bytes that are not UTF-8 inside a JSON
string (``["a\\x80"]``; msgspec 0.22). Every decode of bytes from outside (a request body, a script's
output, an asset service's answer, a message from Redis) catches both, or such a body is a 500 where it
should be a 400.
"""

from __future__ import annotations

from typing import Final

import msgspec

MALFORMED_JSON_ERRORS: Final = (msgspec.DecodeError, UnicodeDecodeError)
