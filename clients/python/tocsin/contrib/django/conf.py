"""The ``TOCSIN`` setting (one dict in settings.py)::

    TOCSIN = {
        "SOCKET": "/run/tocsin/tocsin.sock",  # default: $TOCSIN_SOCKET, else /run/tocsin/tocsin.sock
        "NAME": None,           # the worker's hello name (subscriber:NAME targets)
        "GROUP": None,          # the worker's hello group (group:NAME targets)
        "CONCURRENCY": 4,       # handler threads of tocsin_worker (--concurrency overrides)
        "PREFETCH": None,       # unacked one-of events a worker holds (default 16 x CONCURRENCY)
        "LINGER": 30,           # seconds a shared timer/cron outlives its last worker
        "EAGER": False,         # True: raise calls the handlers in-process, no daemon (tests)
    }

Every key is optional; an unknown key is an error (ImproperlyConfigured) so that a typo does not
go unnoticed. The setting is read at each use, so ``override_settings(TOCSIN={...})`` works.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    "SOCKET": None,
    "NAME": None,
    "GROUP": None,
    "CONCURRENCY": 4,
    "PREFETCH": None,
    "LINGER": None,
    "EAGER": False,
}


def get():
    """The TOCSIN setting merged with the defaults."""
    given = getattr(settings, "TOCSIN", None) or {}
    if not isinstance(given, dict):
        raise ImproperlyConfigured("TOCSIN must be a dict, not %r" % type(given).__name__)
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        raise ImproperlyConfigured("TOCSIN: unknown key(s) %s (known: %s)" % (
            ", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    merged = dict(DEFAULTS)
    merged.update(given)
    c = merged["CONCURRENCY"]
    if not isinstance(c, int) or isinstance(c, bool) or c < 1:
        raise ImproperlyConfigured("TOCSIN['CONCURRENCY'] must be an integer of at least 1")
    return merged
