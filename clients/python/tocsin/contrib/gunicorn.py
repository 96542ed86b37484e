"""Hooks for a gunicorn configuration file, so that each worker process serves the handlers the
application registered (``@tocsin.signal``, ``@tocsin.timer``, ``@tocsin.cron``, the uWSGI
drop-ins), with or without ``--preload``, and the master serves none::

    # gunicorn.conf.py
    from tocsin.contrib.gunicorn import post_worker_init, worker_exit  # noqa: F401

- ``post_worker_init``: in each worker, after it loaded the application, starts the runtime
  (tocsin.start) unless one already runs there (the drop-ins start theirs at import). Settings
  come from the environment: ``TOCSIN_SOCKET``, ``TOCSIN_CONCURRENCY``, ``TOCSIN_NAME``,
  ``TOCSIN_GROUP``, ``TOCSIN_LINGER`` (tocsin.uwsgi.runtime_options).
- ``worker_exit``: when a worker stops, lets its running handlers finish and sends their acks
  (what it held but had not started goes to the other workers at once).

This module does not import gunicorn. With a hook of your own, call :func:`start_in_worker` and
:func:`stop_in_worker` from it.
"""

from .. import runtime
from .. import uwsgi as _settings


def start_in_worker(**kw):
    """Starts this process's runtime unless one runs; returns it. ``kw``: tocsin.start's,
    over the environment's settings."""
    rt = runtime.current()
    if rt is None:
        opts = _settings.runtime_options()
        opts.update(kw)
        rt = runtime.start(**opts)
    return rt


def stop_in_worker(timeout=10.0):
    """Stops this process's runtime, if one runs (handlers finish, acks go out)."""
    rt = runtime.current()
    if rt is not None:
        rt.stop(timeout)


def post_worker_init(worker):
    """gunicorn's ``post_worker_init(worker)`` hook."""
    start_in_worker()


def worker_exit(server, worker):
    """gunicorn's ``worker_exit(server, worker)`` hook (also called in the master for a worker
    that is gone: nothing runs there)."""
    stop_in_worker()
