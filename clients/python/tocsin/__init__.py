"""tocsin: a client for tocsind (numbered signals over a Unix socket, JSON-RPC 2.0).

Standard library only, Python 3.9 or later. See README.md."""

from ._common import (DEFAULT_SOCKET, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST,
                      LIMIT_REACHED, LINE_TOO_LONG, METHOD_NOT_FOUND, NO_SUCH_EVENT,
                      PARSE_ERROR, PAYLOAD_TOO_LARGE, PERMISSION_DENIED, RELOAD_FAILED,
                      SOURCE_CONFLICT, UNKNOWN_SIGNAL, ConnectionLost, Event, Overflow,
                      RpcError, Source, SourceId)
from .client import Client, Subscription
from .decorators import (Handler, clear, cron, filemon, handlers, rbtimer, run, signal, stop,
                         timer)

__version__ = "0.1.0"

__all__ = [
    "Client", "Subscription", "Event", "Source", "SourceId", "Overflow", "RpcError", "ConnectionLost",
    "signal", "timer", "rbtimer", "cron", "filemon", "run", "stop", "clear", "handlers",
    "Handler", "DEFAULT_SOCKET", "PARSE_ERROR", "INVALID_REQUEST", "METHOD_NOT_FOUND",
    "INVALID_PARAMS", "INTERNAL_ERROR", "PERMISSION_DENIED", "LIMIT_REACHED", "UNKNOWN_SIGNAL",
    "PAYLOAD_TOO_LARGE", "NO_SUCH_EVENT", "RELOAD_FAILED", "LINE_TOO_LONG", "SOURCE_CONFLICT",
]

# The runtime for worker processes (issue 16): kept apart from the lines above.
from .runtime import Runtime, start  # noqa: E402

__all__ += ["Runtime", "start"]
