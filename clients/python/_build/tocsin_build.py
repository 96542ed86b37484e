"""A PEP 517 build backend in the standard library only, so that `pip install clients/python`
works offline and without setuptools/wheel. It packs tocsin/*.py into a pure-Python wheel
(and an sdist); `pip install -e` gets a wheel with a .pth file pointing at this directory."""

import base64
import hashlib
import io
import os
import tarfile
import zipfile

NAME = "tocsin"
VERSION = "0.1.0"
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # clients/python
TAG = "py3-none-any"
DIST_INFO = "%s-%s.dist-info" % (NAME, VERSION)


def _metadata():
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
            "Summary: Client for tocsind: numbered signals over a Unix socket, with decorators\n"
            "Requires-Python: >=3.9\nDescription-Content-Type: text/markdown\n\n%s"
            % (NAME, VERSION, readme))


def _wheel_file():
    return "Wheel-Version: 1.0\nGenerator: tocsin_build\nRoot-Is-Purelib: true\nTag: %s\n" % TAG


def _package_files():
    """tocsin/**/*.py: the package and its subpackages (tocsin.contrib.django, ...)."""
    pkg = os.path.join(HERE, NAME)
    for root, dirs, files in os.walk(pkg):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(root, HERE).replace(os.sep, "/")
        for name in sorted(files):
            if name.endswith(".py"):
                yield "%s/%s" % (rel, name), os.path.join(root, name)


def _write_wheel(directory, files):
    """files: list of (archive name, bytes)."""
    name = "%s-%s-%s.whl" % (NAME, VERSION, TAG)
    record = []
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            z.writestr(arc, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append("%s,sha256=%s,%d" % (arc, digest.decode(), len(data)))
        record.append("%s/RECORD,," % DIST_INFO)
        z.writestr("%s/RECORD" % DIST_INFO, "\n".join(record) + "\n")
    return name


# The console scripts of pyproject.toml's [project.scripts] (pip makes `tocsin` from it).
ENTRY_POINTS = "[console_scripts]\ntocsin = tocsin.__main__:main\n"


def _dist_info_files():
    return [("%s/METADATA" % DIST_INFO, _metadata().encode()),
            ("%s/WHEEL" % DIST_INFO, _wheel_file().encode()),
            ("%s/entry_points.txt" % DIST_INFO, ENTRY_POINTS.encode())]


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, DIST_INFO)
    os.makedirs(d, exist_ok=True)
    for arc, data in _dist_info_files():
        with open(os.path.join(metadata_directory, arc), "wb") as f:
            f.write(data)
    return DIST_INFO


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for arc, path in _package_files():
        with open(path, "rb") as f:
            files.append((arc, f.read()))
    return _write_wheel(wheel_directory, files + _dist_info_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    pth = ("%s.pth" % NAME, (HERE + "\n").encode())
    return _write_wheel(wheel_directory, [pth] + _dist_info_files())


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (NAME, VERSION)
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for rel in ["pyproject.toml", "README.md", "_build/tocsin_build.py"]:
            t.add(os.path.join(HERE, rel), "%s/%s" % (base, rel))
        for arc, path in _package_files():
            t.add(path, "%s/%s" % (base, arc))
        for name_ in sorted(os.listdir(os.path.join(HERE, "tests"))):
            if name_.endswith(".py"):
                t.add(os.path.join(HERE, "tests", name_), "%s/tests/%s" % (base, name_))
        info = tarfile.TarInfo("%s/PKG-INFO" % base)
        data = _metadata().encode()
        info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    return name
