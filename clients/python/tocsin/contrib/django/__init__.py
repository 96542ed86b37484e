"""``tocsin.contrib.django``: tocsin for Django projects (Django 3.2 or later).

Add ``"tocsin.contrib.django"`` to INSTALLED_APPS, then:

- **Settings**: one dict, ``TOCSIN = {"SOCKET": ..., "NAME": ..., "GROUP": ...,
  "CONCURRENCY": 4, "PREFETCH": None, "LINGER": None, "EAGER": False}``, every key optional
  (tocsin/contrib/django/conf.py).
- **Handlers** live in a ``tocsin_handlers`` module of any installed app, with the tocsin
  decorators (``@tocsin.signal("orders")``, ``@tocsin.cron(...)``, ...) or the uWSGI drop-ins.
- **Worker**: ``python manage.py tocsin_worker [--concurrency N]`` imports every app's
  ``tocsin_handlers`` and serves them in the foreground with the runtime (tocsin.runtime): a
  pool of threads, batched acks, nack when a handler raises. Around each handler call it runs
  ``django.db.close_old_connections()``, as Django does around a request.
- **forward(django_signal, tocsin_signal, ...)**: raises the tocsin signal whenever the Django
  signal is sent, after the transaction commits (:func:`forward`); :func:`raise_signal` for
  code that raises directly.
- **Eager mode** for tests (``TOCSIN["EAGER"] = True``, like Celery's ``task_always_eager``):
  raising calls the matching ``@tocsin.signal`` handlers in the process, synchronously, without a
  daemon; still after the commit when ``on_commit`` (a Django TestCase runs those callbacks with
  ``captureOnCommitCallbacks(execute=True)``). The events raised are appended to
  :data:`eager_events`.

Django is imported by this subpackage only; the rest of ``tocsin`` does not need it.
"""

from .core import (default_payload, discover, eager_events, forward, label,  # noqa: F401
                   raise_signal)

__all__ = ["forward", "raise_signal", "discover", "default_payload", "label", "eager_events"]
