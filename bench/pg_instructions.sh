#!/bin/bash
# bench/pg_instructions.sh [BUILD_DIR] — instructions tocsind spends per NOTIFY delivered to a
# subscriber, counted by callgrind: deterministic where times on this shared 2-core machine vary by
# a third from run to run (docs/BENCHMARKS.md, pgnotify). Runs tocsin_pgload twice, with tocsind
# under callgrind, at 100,000 and at 200,000 notifications: the difference divided by 100,000 leaves
# out start-up and shut-down.
set -euo pipefail
build=$(realpath "${1:-build/bench}")
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ln -s "$build/plugins" "$work/plugins"  # tocsin_pgload loads the plugin from next to --tocsind
cat > "$work/tocsind" <<WRAP
#!/bin/sh
exec valgrind -q --tool=callgrind --callgrind-out-file=$work/callgrind.out "$build/tocsind" "\$@"
WRAP
chmod +x "$work/tocsind"
total() {
  rm -f "$work/callgrind.out"
  "$build/tocsin_pgload" --tocsind "$work/tocsind" throughput --count "$1" --batch 5000 >/dev/null
  for _ in $(seq 100); do  # callgrind writes its file as tocsind exits
    [ -s "$work/callgrind.out" ] && grep -q '^totals:' "$work/callgrind.out" && break
    sleep 0.1
  done
  awk '/^totals:/ {print $2}' "$work/callgrind.out"
}
a=$(total 100000)
b=$(total 200000)
echo "tocsind: $(( (b - a) / 100000 )) instructions per notification (callgrind, $build)"
