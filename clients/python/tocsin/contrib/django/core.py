"""forward(), raise_signal(), the eager mode and the discovery of ``tocsin_handlers`` modules.

See tocsin/contrib/django/__init__.py for the whole story."""

import datetime
import itertools
import json
import logging
import os
import threading

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils.module_loading import autodiscover_modules

from ... import decorators, runtime
from ..._common import ConnectionLost, Event, Source, socket_path
from ...client import Client
from . import conf

log = logging.getLogger("tocsin")

HANDLERS_MODULE = "tocsin_handlers"

#: The events raised in eager mode, oldest first (like django.core.mail.outbox); tests may
#: clear it (``del eager_events[:]``).
eager_events = []
_eager_seq = itertools.count(1)


def discover():
    """Imports the ``tocsin_handlers`` module of every installed app that has one (their
    ``@tocsin.signal``/``@tocsin.timer``/... register their handlers). Importing is done once per
    module; calling again is cheap. Returns the handlers registered in this process."""
    autodiscover_modules(HANDLERS_MODULE)
    return decorators.handlers()


# -- payloads ------------------------------------------------------------------------------------
def label(obj):
    """A readable name for a signal's sender: ``app_label.Model`` for a model (class or
    instance), ``module.QualName`` for another class or a function, the string itself, else the
    type's name."""
    if obj is None or isinstance(obj, str):
        return obj
    meta = getattr(obj, "_meta", None)
    if meta is not None and getattr(meta, "label", None):
        return meta.label
    if isinstance(obj, type) or callable(obj):
        return "%s.%s" % (getattr(obj, "__module__", "?"),
                          getattr(obj, "__qualname__", getattr(obj, "__name__", "?")))
    return "%s.%s" % (type(obj).__module__, type(obj).__qualname__)


_SCALARS = (str, int, float, bool, type(None))


def _jsonable(value):
    """(True, value as JSON) for what the default payload keeps, else (False, None)."""
    if isinstance(value, _SCALARS):
        return True, value
    if isinstance(value, (set, frozenset, list, tuple)):
        items = list(value)
        if all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in items):
            if isinstance(value, (set, frozenset)):
                try:
                    items.sort()
                except TypeError:
                    items.sort(key=repr)
            return True, items
        return False, None
    if getattr(value, "_meta", None) is not None and isinstance(value, type):
        return True, label(value)  # a model class (m2m_changed's model=)
    return False, None


def _pk(value):
    ok, v = _jsonable(value)
    return v if ok else str(value)


def default_payload(sender, **kwargs):
    """The JSON a forwarded signal carries unless ``payload=`` says otherwise::

        {"sender": "shop.Order", "pk": 42, "created": true, "raw": false, "using": "default",
         "update_fields": null}

    ``sender`` is :func:`label` of the sender, ``pk`` the primary key of the ``instance``
    argument (model signals; a UUID or another type as its string), and every other keyword
    argument the Django signal sent whose value is a string, number, boolean or None, or a
    list/set of strings and numbers (a set sorted: m2m_changed's ``pk_set``); model classes as
    their label. Other values are left out. Keys are sorted."""
    data = {"sender": label(sender)}
    for key, value in kwargs.items():
        if key == "signal":
            continue
        if key == "instance":
            pk = getattr(value, "pk", None)
            if pk is not None:
                data["pk"] = _pk(pk)
            continue
        ok, v = _jsonable(value)
        if ok:
            data[key] = v
    return json.dumps(data, sort_keys=True)


def _encode(payload):
    if payload is None or isinstance(payload, str):
        return payload
    if isinstance(payload, bytes):
        return payload.decode()
    return json.dumps(payload, sort_keys=True)


# -- raising -------------------------------------------------------------------------------------
_lock = threading.Lock()
_client = None
_client_pid = None
_client_path = None


def _connection(path):
    global _client, _client_pid, _client_path
    with _lock:
        if (_client is None or _client.closed or _client_pid != os.getpid()
                or _client_path != path):
            if _client is not None:
                if _client_pid != os.getpid():
                    try:  # the parent's connection: let go of our copy, do not shut it down
                        _client._sock.detach()
                    except OSError:
                        pass
                else:
                    _client.close()
            _client = None
            _client = Client(path)
            _client_pid, _client_path = os.getpid(), path
        return _client


def _send(cfg, signal, payload):
    path = socket_path(cfg["SOCKET"])
    for attempt in (1, 2):  # once more on a fresh connection after a daemon restart
        c = _connection(path)
        try:
            return c.raise_signal(signal, payload)
        except ConnectionLost:
            if attempt == 2:
                raise


def _eager(signal, payload):
    if runtime.AUTOSTART:
        runtime.AUTOSTART = False  # drop-ins in tocsin_handlers modules: no runtime, no daemon
    discover()
    ev = Event(signal=signal if isinstance(signal, int) else None,
               name=signal if isinstance(signal, str) else None,
               seq=next(_eager_seq), source=Source("eager", "django"),
               time=datetime.datetime.now(datetime.timezone.utc).isoformat(),
               payload=payload if payload is not None else "", delivery=1)
    eager_events.append(ev)
    for h in decorators.handlers():
        if h.kind == "signal" and h.func is not None and ev.matches(h.signal):
            h.func(ev)  # an exception propagates to the code that raised
    return ev.seq


def _raise_now(signal, payload):
    cfg = conf.get()
    if cfg["EAGER"]:
        return _eager(signal, payload)
    return _send(cfg, signal, payload)


def raise_signal(signal, payload=None, *, on_commit=False, using=None):
    """Raises the tocsin ``signal`` (a number or a name) with ``payload`` (a string, bytes, or
    anything JSON-serializable, sent as JSON). Returns the event's seq, or None with
    ``on_commit``: then it is raised after the transaction on ``using`` commits (at once outside
    a transaction; never if it rolls back). In eager mode (``TOCSIN["EAGER"]``) the handlers
    registered in this process are called instead, synchronously."""
    payload = _encode(payload)
    if on_commit:
        transaction.on_commit(lambda: _raise_now(signal, payload), using=using)
        return None
    return _raise_now(signal, payload)


def forward(django_signal, tocsin_signal, *, sender=None, payload=None, on_commit=True,
            using=None, fail_silently=False, dispatch_uid=None):
    """Raises the tocsin signal ``tocsin_signal`` (number or name) whenever ``django_signal`` is
    sent (by ``sender``, or by anyone when None).

    - ``payload``: ``payload(sender, **kwargs)`` (called with what the Django signal sent, at the
      moment it is sent) returns the payload: a string, bytes, anything JSON-serializable, or None
      for none. Default: :func:`default_payload` (``{"sender": "shop.Order", "pk": 42, ...}``).
    - ``on_commit`` (default True): raised once the transaction commits
      (``transaction.on_commit`` on ``using``, else the ``using`` argument the signal sent, else
      the default database); a rolled-back transaction raises nothing. False: at once.
    - Errors of the raise (the daemon unreachable: ConnectionLost, a refusal: RpcError)
      propagate to whoever sent the signal or committed, unless ``fail_silently``: then they
      are logged (logger ``tocsin``).
    - Returns the receiver; ``django_signal.disconnect(sender=sender,
      dispatch_uid=receiver.dispatch_uid)`` undoes it. Forwarding the same Django signal and sender to the same tocsin signal twice (a module
      imported twice) connects once (``dispatch_uid``).
    """
    make_payload = payload if payload is not None else default_payload

    def fire(value):
        try:
            _raise_now(tocsin_signal, value)
        except Exception:
            if not fail_silently:
                raise
            log.exception("tocsin: forwarding to %r failed", tocsin_signal)

    def receiver(sender, **kwargs):
        value = _encode(make_payload(sender, **kwargs))
        if on_commit:
            db = using or kwargs.get("using")
            if not isinstance(db, str):
                db = DEFAULT_DB_ALIAS
            transaction.on_commit(lambda: fire(value), using=db)
        else:
            fire(value)

    receiver.__qualname__ = receiver.__name__ = "forward_to_%s" % tocsin_signal
    if dispatch_uid is None:
        dispatch_uid = "tocsin.forward:%r:%s" % (tocsin_signal, label(make_payload))
    receiver.dispatch_uid = dispatch_uid
    django_signal.connect(receiver, sender=sender, weak=False, dispatch_uid=dispatch_uid)
    return receiver
