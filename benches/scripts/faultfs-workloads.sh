#!/usr/bin/env bash
# What faultfs costs each workload: the same load (4 clients, one setting
# of the workload) on a bind mount killed with `process-kill` (the data on
# the host's disk directly) and killed with `host-kill` (the data on
# faultfs over a directory of the same disk, mounted as a host-kill cycle
# mounts it), in one run per setting; prints each cell's throughput and the
# ratio faultfs / without. Issue 26's target: every ratio >= 0.8, the
# fsync-bound settings above 1 (an fsync on faultfs need not reach the
# disk).
#
#   benches/scripts/faultfs-workloads.sh [NAME...]   (root, Docker, /dev/fuse)
#
# NAMEs pick settings from the table below (default: all). A host-kill
# cycle's load runs until its aimed cut lands (at most 10 s past `load`),
# and the cells' throughput counts acknowledged commits over the load's
# time, so both cells are measured the same way.
#
# Environment:
#   CRASHLAB=PATH  the crashlab binary; default: built here (release).
#   LOAD=DUR       load per cycle (default 5s).
#   CYCLES=N       cycles per cell (default 2).
#
# A benchmark script, not part of the product.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 2; }
crashlab=${CRASHLAB:-}
if [ -z "$crashlab" ]; then
  cargo build -q --release -p crashlab
  crashlab=target/release/crashlab
fi
load=${LOAD:-5s}
cycles=${CYCLES:-2}

# name | kind | server-args as a TOML array
settings=(
  'sqlite-wal-normal|sqlite|["--journal-mode=wal", "--synchronous=normal"]'
  'sqlite-wal-full|sqlite|["--journal-mode=wal", "--synchronous=full"]'
  'redis-everysec|redis|["--appendonly", "yes", "--appendfsync", "everysec"]'
  'redis-always|redis|["--appendonly", "yes", "--appendfsync", "always"]'
  'mariadb-flush-2|mariadb|["--innodb-flush-log-at-trx-commit=2"]'
  'mariadb-durable|mariadb|["--innodb-flush-log-at-trx-commit=1"]'
  'postgres-fsync-off|postgres|["-c", "fsync=off"]'
  'postgres-durable|postgres|["-c", "synchronous_commit=on", "-c", "fsync=on"]'
)

work=$(mktemp -d /var/tmp/faultfs-workloads.XXXXXX)
cleanup() {
  CRASHLAB_STATE_DIR=$work/state "$crashlab" clean >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
echo "crashlab: $crashlab; load $load, $cycles cycles a cell, 4 clients, bind mount"
printf '%-20s %14s %14s %8s  %s\n' setting 'without tps' 'faultfs tps' ratio run
for entry in "${settings[@]}"; do
  IFS='|' read -r name kind args <<<"$entry"
  if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then
    continue
  fi
  cat >"$work/$name.toml" <<EOF
name = "faultfs-$name"
seed = 1
[workload]
kind = "$kind"
server-args = $args
clients = 4
load = "$load"
[matrix]
strategies = ["bind-mount"]
faults = ["process-kill", "host-kill"]
cycles = $cycles
EOF
  out=$work/out-$name
  # An unsafe setting loses writes under host-kill, which fails the run's
  # expectations; the throughput is what is read here.
  CRASHLAB_STATE_DIR=$work/state "$crashlab" run -q --out "$out" "$work/$name.toml" >"$work/$name.log" 2>&1 || true
  if [ ! -f "$out/report.json" ]; then
    echo "$name: no report; the run's output:" >&2
    tail -20 "$work/$name.log" >&2
    continue
  fi
  tps() { jq -r --arg f "$1" '.cells[] | select(.fault == $f) | .throughput_tps' "$out/report.json"; }
  without=$(tps process-kill)
  with=$(tps host-kill)
  run=$(jq -r '.run_id' "$out/report.json")
  awk -v n="$name" -v a="$without" -v b="$with" -v r="$run" \
    'BEGIN { printf "%-20s %14.0f %14.0f %8.2f  %s\n", n, a, b, (a > 0 ? b / a : 0), r }'
done
