#!/usr/bin/env bash
# faultfs overhead, measured with fio: the same kind of backing directory
# used directly (native), through faultfs mounted as a `host-kill` cycle
# mounts it (side `faultfs`: no unsynced history recorded), through faultfs
# mounted as a `crash-states` cycle mounts it (side `history`: every
# unsynced operation recorded, with a copy of each write's data) and, when
# LazyFS is built beside it, through LazyFS; 3 rotated rounds (round r
# starts with a different side, so no side always runs first or last, and
# even rounds go through the sides backward, so no side always follows the
# same one), medians, spreads and ratios.
# Issue 26's targets: 4 KiB write+fsync IOPS >= 2x native and >= 3x LazyFS
# (an fsync on faultfs need not reach the disk: the power cut is simulated;
# `fsync-reaches-disk` turns that off) and 1 MiB sequential write MiB/s
# >= 0.9x native. A third figure, 4 fio jobs doing the 4 KiB write+fsync
# on their own files at once, shows how requests on different files share
# faultfs.
#
#   benches/scripts/faultfs-fio.sh [SERVE-ARGS...]   (root, /dev/fuse)
#
# SERVE-ARGS go to every faultfs mount (e.g. `--threads 2`). fio runs on
# the host when it is installed (apt-get install fio), else in a
# crashlab/fio container with the directory bind-mounted (root, Docker).
#
# Environment:
#   SERVE=PATH    a prebuilt faultfs `serve` example (e.g. an older build, to
#                 compare builds); default: built here from this checkout.
#   BASELINE=PATH another `serve` build (say, main's) mounted beside it as
#                 sides `baseline` and `base-history`, for before/after
#                 figures in one run.
#   LAZYFS=PATH   LazyFS's `build/lazyfs` binary (github.com/dsrhaslab/lazyfs,
#                 built with its build.sh); adds a LazyFS side with its
#                 default configuration (`config/default.toml` beside build/).
#   HISTORY=0     leaves out the sides with the history recorded.
#   ROUNDS=N      rounds (default 3).
#
# A benchmark script, not part of the product.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 2; }
rounds=${ROUNDS:-3}
serve=${SERVE:-}
if [ -z "$serve" ]; then
  cargo build -q --release -p crashlab-faultfs --example serve
  serve=target/release/examples/serve
fi
if command -v fio >/dev/null; then
  fio_where=host
else
  fio_where=container
  cargo run -q --release -p crashlab -- images list | grep -q 'fio .* built' \
    || cargo run -q --release -p crashlab -- images build fio
fi

work=$(mktemp -d /var/tmp/faultfs-fio.XXXXXX)
mkdir -p "$work/native"
sides=(native)
declare -A dirs=([native]=$work/native)
# Each faultfs mount serves until its stdin (a pipe from this script, on
# its own descriptor) closes; the pipes' descriptors are closed at exit.
serve_pids=()
serve_fds=()
lazy_pid=
cleanup() {
  for fd in "${serve_fds[@]}"; do eval "exec $fd>&-"; done
  for pid in "${serve_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for side in "${sides[@]}"; do
    [ "$side" = native ] || umount -l "${dirs[$side]}" 2>/dev/null || true
  done
  [ -z "$lazy_pid" ] || kill "$lazy_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_mount() {
  for _ in $(seq 100); do mountpoint -q "$1" && return 0; sleep 0.1; done
  echo "$2 did not mount" >&2
  exit 1
}
mount_faultfs() { # SIDE SERVE [ARGS...]
  local side=$1 bin=$2 fd
  shift 2
  mkdir -p "$work/$side-backing" "$work/$side-mnt"
  # The serving process must not hold the other mounts' pipes, or those
  # never see their end.
  exec {fd}> >(for f in "${serve_fds[@]}"; do eval "exec $f>&-"; done; exec "$bin" "$work/$side-backing" "$work/$side-mnt" "$@" 2>/dev/null)
  serve_pids+=($!)
  serve_fds+=("$fd")
  wait_mount "$work/$side-mnt" "$side"
  sides+=("$side")
  dirs[$side]=$work/$side-mnt
}
mount_faultfs faultfs "$serve" "$@"
[ "${HISTORY:-1}" = 0 ] || mount_faultfs history "$serve" --history "$@"
if [ -n "${BASELINE:-}" ]; then
  mount_faultfs baseline "$BASELINE" "$@"
  [ "${HISTORY:-1}" = 0 ] || mount_faultfs base-history "$BASELINE" --history "$@"
fi
if [ -n "${LAZYFS:-}" ]; then
  mkdir -p "$work/lazy-backing" "$work/lazy-mnt"
  # LazyFS's own mount script, minus the fixed paths: the subdir module
  # serves the backing directory at the mountpoint. It must not hold the
  # pipes to faultfs, or faultfs never sees the end of its stdin.
  (
    for f in "${serve_fds[@]}"; do eval "exec $f>&-"; done
    exec "$LAZYFS" "$work/lazy-mnt" --config-path "$(dirname "$LAZYFS")/../config/default.toml" \
      -o allow_other -o modules=subdir -o "subdir=$work/lazy-backing" -f >/dev/null 2>&1
  ) &
  lazy_pid=$!
  wait_mount "$work/lazy-mnt" LazyFS
  sides+=(lazyfs)
  dirs[lazyfs]=$work/lazy-mnt
fi
echo "fio on the $fio_where; faultfs: $serve${*:+ $*}${BASELINE:+; baseline: $BASELINE}; sides: ${sides[*]}; $rounds rotated rounds"

run_fio() { # DIR FIO-ARGS... -> prints fio JSON
  local dir=$1; shift
  local common=(--ioengine=psync --output-format=json --group_reporting)
  if [ "$fio_where" = host ]; then
    fio --directory="$dir" "${common[@]}" "$@"
  else
    docker run --rm -v "$dir:/data" --entrypoint fio crashlab/fio --directory=/data "${common[@]}" "$@"
  fi
}
fsync4k() { run_fio "$1" --name=f --rw=randwrite --bs=4k --size=64m --fsync=1 --runtime=10 --time_based \
  | jq '.jobs[0].write.iops'; }
fsync4k4() { run_fio "$1" --name=c --rw=randwrite --bs=4k --size=16m --fsync=1 --runtime=10 --time_based --numjobs=4 \
  | jq '.jobs[0].write.iops'; }
seq1m() { run_fio "$1" --name=s --rw=write --bs=1m --size=1g --end_fsync=1 \
  | jq '.jobs[0].write.bw / 1024'; }
# The rounds' figures, one a line; blank lines are dropped before sorting,
# or they would sort first and the smallest figure would be the median.
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'; }

declare -A results
n=${#sides[@]}
for round in $(seq "$rounds"); do
  for k in $(seq 0 $((n - 1))); do
    # Odd rounds go forward through the sides, even rounds backward, so
    # that no side always follows the same one: a side's figures were seen
    # to depend on which side ran before it.
    if [ $((round % 2)) = 1 ]; then
      side=${sides[$(((round - 1 + k) % n))]}
    else
      side=${sides[$(((round - 1 + n - k) % n))]}
    fi
    dir=${dirs[$side]}
    f=$(fsync4k "$dir"); rm -f "$dir"/f.*
    c=$(fsync4k4 "$dir"); rm -f "$dir"/c.*
    s=$(seq1m "$dir"); rm -f "$dir"/s.*
    printf 'round %s %-8s 4k write+fsync %8.0f IOPS   4 jobs %8.0f IOPS   1m seq write %6.0f MiB/s\n' \
      "$round" "$side" "$f" "$c" "$s"
    results[$side-f]+="$f "; results[$side-c]+="$c "; results[$side-s]+="$s "
  done
done
for side in "${sides[@]}"; do
  printf '%-8s median 4k write+fsync %6.0f IOPS (%s)  4 jobs %6.0f IOPS (%s)  1m seq write %4.0f MiB/s (%s)\n' "$side" \
    "$(median <<<"${results[$side-f]}")" "$(spread <<<"${results[$side-f]}")" \
    "$(median <<<"${results[$side-c]}")" "$(spread <<<"${results[$side-c]}")" \
    "$(median <<<"${results[$side-s]}")" "$(spread <<<"${results[$side-s]}")"
done
# Ratios of medians: every side against native, faultfs's sides against
# LazyFS and, with a baseline, each against its baseline side.
ratio() { # LABEL WHAT SIDE OVER -> one line
  local a b
  a=$(median <<<"${results[$3-$2]}"); b=$(median <<<"${results[$4-$2]}")
  awk -v a="$a" -v b="$b" -v l="$1" -v s="$3" -v o="$4" 'BEGIN { printf "%-16s %s/%s %.2fx\n", l, s, o, a / b }'
}
has() { [[ " ${sides[*]} " == *" $1 "* ]]; }
for what in f c s; do
  case $what in
    f) label='4k write+fsync:' ;;
    c) label='4 jobs:' ;;
    s) label='1m seq write:' ;;
  esac
  for side in "${sides[@]}"; do
    [ "$side" = native ] || ratio "$label" "$what" "$side" native
  done
  if has lazyfs; then
    for side in faultfs history; do has "$side" && ratio "$label" "$what" "$side" lazyfs; done
  fi
  has baseline && ratio "$label" "$what" faultfs baseline
  has base-history && ratio "$label" "$what" history base-history
done
echo "targets: 4k write+fsync faultfs >= 2x native and >= 3x lazyfs; 1m seq write faultfs >= 0.9x native"
