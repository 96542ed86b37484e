#!/usr/bin/env bash
# tests/packaging/test_deb.sh BUILD_DIR — builds the .deb from a configured and built tree with
# cpack, checks what is in it, installs it with dpkg -i (apt-get -f install if dependencies are
# missing), then checks the installed result:
#   - /usr/bin/tocsind --check --config /etc/tocsin/tocsin.yaml exits 0 (binary and conffile);
#   - getent passwd tocsin and getent group tocsin (postinst created them);
#   - /var/lib/tocsin and /run/tocsin exist, owned by tocsin (postinst ran tmpfiles);
#   - the units, sysusers.d and tmpfiles.d files are where systemd looks;
# and, unless the package was installed before the test or TOCSIN_TEST_DEB_KEEP=1, purges it again
# (prerm/postrm must succeed too). Prints FAIL: lines for what failed; exits 1 if anything did.
# Exits 77 (skipped) when not root, when systemd is running as init (installing would enable and
# start tocsind on this machine: run it in a container or CI), or for a sanitizer build.
set -uo pipefail

build=${1:?usage: test_deb.sh BUILD_DIR}
build=$(cd "$build" && pwd) || { echo "FAIL: no such build dir: $1" >&2; exit 1; }
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
skip() { echo "SKIP: $*" >&2; exit 77; }

[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg -i)"
[ -d /run/systemd/system ] && [ "${TOCSIN_TEST_DEB_ON_SYSTEMD:-0}" != 1 ] &&
  skip "systemd is running here: installing would enable and start tocsind (TOCSIN_TEST_DEB_ON_SYSTEMD=1 to do it anyway)"
[ -f "$build/CMakeCache.txt" ] || { echo "FAIL: $build is not a CMake build dir" >&2; exit 1; }
grep -Eq '^TOCSIN_(SANITIZE|TSAN):BOOL=ON' "$build/CMakeCache.txt" && skip "sanitizer build: package a plain one"
for tool in cpack dpkg dpkg-deb getent; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found" >&2; exit 1; }
done

was_installed=0
dpkg-query -W -f='${Status}' tocsin 2>/dev/null | grep -q "install ok installed" && was_installed=1

# 1. Build the package (cpack installs the build into a staging dir: the build must be up to date).
echo "== cpack -G DEB in $build"
out_dir=$(mktemp -d /tmp/tocsin-deb.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT
if ! (cd "$build" && cpack -G DEB -B "$out_dir" >"$out_dir/cpack.log" 2>&1); then
  echo "FAIL: cpack failed:" >&2
  cat "$out_dir/cpack.log" >&2
  exit 1
fi
deb=$(find "$out_dir" -maxdepth 1 -name 'tocsin_*.deb' | head -n 1)
[ -n "$deb" ] || { echo "FAIL: cpack made no tocsin_*.deb in $out_dir" >&2; exit 1; }
echo "ok: $(basename "$deb")"

# 2. What is in it.
echo "== dpkg-deb --info/--contents"
dpkg-deb --field "$deb" Package Version Architecture Depends
contents=$(dpkg-deb --contents "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for f in /usr/bin/tocsind /usr/bin/tocsinctl /etc/tocsin/tocsin.yaml \
         /usr/lib/systemd/system/tocsind.service /usr/lib/systemd/system/tocsind.socket \
         /usr/lib/sysusers.d/tocsin.conf /usr/lib/tmpfiles.d/tocsin.conf \
         /usr/lib/python3/dist-packages/tocsin/__init__.py /usr/lib/tocsin/plugins/pgnotify.so; do
  printf '%s\n' "$contents" | grep -qx "$f" || fail "the package has no $f"
done
ctrl=$out_dir/control
dpkg-deb --control "$deb" "$ctrl"
grep -qx /etc/tocsin/tocsin.yaml "$ctrl/conffiles" 2>/dev/null ||
  fail "/etc/tocsin/tocsin.yaml is not a conffile (DEBIAN/conffiles: $(cat "$ctrl/conffiles" 2>/dev/null))"
for s in postinst prerm postrm; do
  [ -x "$ctrl/$s" ] || fail "the package has no executable $s"
done

# 3. Install.
echo "== dpkg -i $(basename "$deb")"
if ! dpkg -i "$deb"; then
  echo "dpkg -i failed (dependencies?): apt-get -f install" >&2
  if ! DEBIAN_FRONTEND=noninteractive apt-get -f install -y -q; then
    echo "FAIL: dpkg -i and apt-get -f install failed" >&2
    exit 1
  fi
fi
dpkg-query -W -f='${Status}' tocsin 2>/dev/null | grep -q "install ok installed" ||
  { echo "FAIL: tocsin is not installed after dpkg -i: $(dpkg-query -W -f='${Status}' tocsin 2>&1)" >&2; exit 1; }
echo "ok: installed"

# 4. The installed result.
echo "== /usr/bin/tocsind --check --config /etc/tocsin/tocsin.yaml"
if ! /usr/bin/tocsind --check --config /etc/tocsin/tocsin.yaml; then
  fail "tocsind --check of the installed config failed"
fi
echo "== the installed pgnotify plugin loads from the default plugin_path"
plugin_cfg=$out_dir/plugin.yaml
printf 'signals: {50: {name: jobs}}\nplugins:\n  pgnotify: {conninfo: "host=/nonexistent", channels: {jobs: 50}}\n' >"$plugin_cfg"
/usr/bin/tocsind --check "$plugin_cfg" || fail "the installed tocsind cannot load the installed pgnotify plugin"
echo "== the installed Python client imports with the system python3"
if command -v /usr/bin/python3 >/dev/null; then
  (cd / && /usr/bin/python3 -c 'import tocsin; print("tocsin", tocsin.__version__ if hasattr(tocsin, "__version__") else "")') ||
    fail "python3 cannot import the installed tocsin package"
fi
echo "== getent passwd tocsin"
if getent passwd tocsin; then
  getent group tocsin >/dev/null || fail "no group tocsin"
  for d in /var/lib/tocsin /run/tocsin; do
    if [ ! -d "$d" ]; then
      fail "$d was not created"
    elif [ "$(stat -c %U:%G "$d")" != tocsin:tocsin ]; then
      fail "$d is owned by $(stat -c %U:%G "$d"), not tocsin:tocsin"
    fi
  done
else
  fail "no user tocsin (postinst)"
fi
/usr/bin/tocsinctl --version >/dev/null || fail "/usr/bin/tocsinctl --version failed"

# 5. Remove again (unless it was there before us).
if [ $was_installed -eq 0 ] && [ "${TOCSIN_TEST_DEB_KEEP:-0}" != 1 ]; then
  echo "== dpkg --purge tocsin"
  if ! dpkg --purge tocsin; then
    fail "dpkg --purge tocsin failed"
  else
    [ -e /usr/bin/tocsind ] && fail "/usr/bin/tocsind is still there after purge"
    [ -e /etc/tocsin/tocsin.yaml ] && fail "/etc/tocsin/tocsin.yaml is still there after purge"
    [ -e /var/lib/tocsin ] && fail "/var/lib/tocsin is still there after purge"
  fi
fi

if [ $failed -ne 0 ]; then
  echo "test_deb: FAILED" >&2
  exit 1
fi
echo "test_deb: all checks passed"
