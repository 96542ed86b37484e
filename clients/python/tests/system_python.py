"""Debian's python3-django and gunicorn are for /usr/bin/python3, which need not be the python3
that runs the tests: tests that need them run it as a subprocess (scripts/deps test installs
them)."""

import os
import subprocess
import unittest

from tocsind_fixture import PKG

SYSTEM_PYTHON = "/usr/bin/python3"
_has = {}


def has(module):
    """True when /usr/bin/python3 imports ``module``."""
    if module not in _has:
        ok = False
        if os.access(SYSTEM_PYTHON, os.X_OK):
            ok = subprocess.run([SYSTEM_PYTHON, "-c", "import " + module],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode == 0
        _has[module] = ok
    return _has[module]


def require(*modules):
    """Raises SkipTest naming what is missing (and how to get it)."""
    missing = [m for m in modules if not has(m)]
    if missing:
        raise unittest.SkipTest(
            "%s cannot import %s (Debian: apt-get install python3-django gunicorn, or "
            "scripts/deps test)" % (SYSTEM_PYTHON, ", ".join(missing)))


def env(**extra):
    """The environment for a /usr/bin/python3 subprocess: this tree's tocsin package first on
    the path, and ``extra``."""
    e = dict(os.environ)
    e.pop("PYTHONHOME", None)
    paths = [PKG] + [p for p in extra.pop("PYTHONPATH", "").split(os.pathsep) if p]
    e["PYTHONPATH"] = os.pathsep.join(paths)
    e.update({k: str(v) for k, v in extra.items()})
    return e
