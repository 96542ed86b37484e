#!/usr/bin/env bash
# tests/packaging/test_units.sh [SOURCE_DIR] — checks the systemd files in systemd/ without
# installing anything and without starting any service manager:
#   1. `systemd-analyze verify` of tocsind.service and tocsind.socket prints nothing;
#   2. `systemd-analyze security --offline=yes` rates tocsind.service at most 2.0;
#   3. tocsin.sysusers.conf creates user and group tocsin, and tocsin.tmpfiles.conf creates
#      /run/tocsin and /var/lib/tocsin owned by them (both applied to the temporary root only).
# The checks run against a temporary root (--root=DIR): the units are copied to where the .deb
# puts them (DIR/usr/lib/systemd/system, next to a copy of the host's own units, which verify
# needs for sysinit.target & co.), and /usr/bin/tocsind and /usr/bin/tocsinctl are executable
# stubs there, so that verify's "Command ... is not executable" check passes without an install.
# Needs systemd-analyze, systemd-sysusers and systemd-tmpfiles (Debian package `systemd`).
# Exits 0 if everything passed, 1 otherwise, saying what failed.
set -uo pipefail

src=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
max_exposure=2.0
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool not found (apt-get install systemd; scripts/deps test installs it)" >&2
    exit 1
  fi
done
for f in tocsind.service tocsind.socket tocsin.sysusers.conf tocsin.tmpfiles.conf; do
  [ -f "$src/systemd/$f" ] || { echo "FAIL: $src/systemd/$f is missing" >&2; exit 1; }
done

root=$(mktemp -d /tmp/tocsin-units.XXXXXX)
trap 'rm -rf "$root"' EXIT
unitdir=$root/usr/lib/systemd/system
mkdir -p "$root/usr/bin" "$root/etc" "$root/usr/lib/systemd" "$root/usr/lib/sysusers.d" \
  "$root/usr/lib/tmpfiles.d"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$src/systemd/tocsind.service" "$src/systemd/tocsind.socket" "$unitdir/"
cp "$src/systemd/tocsin.sysusers.conf" "$root/usr/lib/sysusers.d/tocsin.conf"
cp "$src/systemd/tocsin.tmpfiles.conf" "$root/usr/lib/tmpfiles.d/tocsin.conf"
for b in tocsind tocsinctl; do
  printf '#!/bin/sh\nexit 0\n' >"$root/usr/bin/$b"
  chmod 0755 "$root/usr/bin/$b"
done

# 1. verify: any output at all (warnings included) is a failure.
echo "== systemd-analyze verify tocsind.service tocsind.socket"
out=$(systemd-analyze verify --root="$root" tocsind.service tocsind.socket 2>&1)
rc=$?
if [ -n "$out" ] || [ $rc -ne 0 ]; then
  fail "systemd-analyze verify (exit $rc) printed:"
  printf '%s\n' "$out" >&2
else
  echo "ok: verify printed nothing"
fi

# 2. security: the overall exposure level, e.g. "→ Overall exposure level for tocsind.service: 1.0 OK".
echo "== systemd-analyze security --offline=yes tocsind.service"
out=$(systemd-analyze security --offline=yes --root="$root" tocsind.service 2>&1)
score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for tocsind\.service: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
  fail "systemd-analyze security printed no overall exposure level:"
  printf '%s\n' "$out" >&2
elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
  fail "exposure $score is above $max_exposure; the settings that cost most:"
  printf '%s\n' "$out" | grep '^✗' >&2
else
  echo "ok: exposure $score (at most $max_exposure)"
fi

# 3. sysusers and tmpfiles, applied to the temporary root.
echo "== systemd-sysusers, systemd-tmpfiles --create (in $root)"
if ! out=$(systemd-sysusers --root="$root" 2>&1); then
  fail "systemd-sysusers: $out"
fi
grep -q '^tocsin:' "$root/etc/passwd" 2>/dev/null || fail "sysusers created no user tocsin"
grep -q '^tocsin:' "$root/etc/group" 2>/dev/null || fail "sysusers created no group tocsin"
if ! out=$(systemd-tmpfiles --root="$root" --create 2>&1); then
  fail "systemd-tmpfiles --create: $out"
fi
uid=$(awk -F: '$1 == "tocsin" { print $3 }' "$root/etc/passwd" 2>/dev/null)
for d in run/tocsin var/lib/tocsin; do
  if [ ! -d "$root/$d" ]; then
    fail "tmpfiles did not create /$d"
  elif [ "$(stat -c '%u %a' "$root/$d")" != "$uid 750" ]; then
    fail "/$d is $(stat -c '%u %a' "$root/$d"), expected \"$uid 750\" (tocsin, 0750)"
  fi
done
[ $failed -eq 0 ] && echo "ok: user/group tocsin, /run/tocsin and /var/lib/tocsin (0750 tocsin)"

if [ $failed -ne 0 ]; then
  echo "test_units: FAILED" >&2
  exit 1
fi
echo "test_units: all checks passed"
