#!/usr/bin/env bash
# faultfs overhead, measured with fio: the same kind of backing directory
# used directly (native), through faultfs and, when LazyFS is built beside
# it, through LazyFS; 3 rotated rounds (round r starts with a different
# side, so no side always runs first or last), medians and ratios.
# Issue 26's targets: 4 KiB write+fsync IOPS >= 2x native and >= 3x LazyFS
# (an fsync on faultfs need not reach the disk: the power cut is simulated;
# `fsync-reaches-disk` turns that off) and 1 MiB sequential write MiB/s
# >= 0.9x native. A third figure, 4 fio jobs doing the 4 KiB write+fsync
# on their own files at once, shows how requests on different files share
# faultfs.
#
#   benches/scripts/faultfs-fio.sh [--history]   (root, /dev/fuse)
#
# fio runs on the host when it is installed (apt-get install fio), else in
# a crashlab/fio container with the directory bind-mounted (root, Docker).
# The faultfs mount is a `host-kill` cycle's: no unsynced history recorded.
# With --history it is a `crash-states` cycle's, which records it.
#
# Environment:
#   SERVE=PATH    a prebuilt faultfs `serve` example (e.g. an older build, to
#                 compare builds); default: built here from this checkout.
#   BASELINE=PATH another `serve` build (say, main's) mounted beside it as
#                 side `baseline`, for before/after figures in one run.
#   LAZYFS=PATH   LazyFS's `build/lazyfs` binary (github.com/dsrhaslab/lazyfs,
#                 built with its build.sh); adds a LazyFS side with its
#                 default configuration (`config/default.toml` beside build/).
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
mkdir -p "$work/native" "$work/backing" "$work/mnt"
sides=(native faultfs)
declare -A dirs=([native]=$work/native [faultfs]=$work/mnt)
exec 3> >(exec "$serve" "$work/backing" "$work/mnt" "$@" 2>/dev/null)
serve_pid=$!
lazy_pid=
base_pid=
cleanup() {
  exec 3>&- 4>&-
  wait "$serve_pid" 2>/dev/null || true
  umount -l "$work/mnt" 2>/dev/null || true
  if [ -n "$base_pid" ]; then
    wait "$base_pid" 2>/dev/null || true
    umount -l "$work/base-mnt" 2>/dev/null || true
  fi
  if [ -n "$lazy_pid" ]; then
    umount -l "$work/lazy-mnt" 2>/dev/null || true
    kill "$lazy_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
wait_mount() {
  for _ in $(seq 100); do mountpoint -q "$1" && return 0; sleep 0.1; done
  echo "$2 did not mount" >&2
  exit 1
}
wait_mount "$work/mnt" faultfs
if [ -n "${BASELINE:-}" ]; then
  mkdir -p "$work/base-backing" "$work/base-mnt"
  exec 4> >(exec 3>&- "$BASELINE" "$work/base-backing" "$work/base-mnt" "$@" 2>/dev/null)
  base_pid=$!
  wait_mount "$work/base-mnt" "baseline faultfs"
  sides+=(baseline)
  dirs[baseline]=$work/base-mnt
fi
if [ -n "${LAZYFS:-}" ]; then
  mkdir -p "$work/lazy-backing" "$work/lazy-mnt"
  # LazyFS's own mount script, minus the fixed paths: the subdir module
  # serves the backing directory at the mountpoint. It must not hold the
  # pipe to faultfs (fd 3), or faultfs never sees the end of its stdin.
  "$LAZYFS" "$work/lazy-mnt" --config-path "$(dirname "$LAZYFS")/../config/default.toml" \
    -o allow_other -o modules=subdir -o "subdir=$work/lazy-backing" -f >/dev/null 2>&1 3>&- 4>&- &
  lazy_pid=$!
  wait_mount "$work/lazy-mnt" LazyFS
  sides+=(lazyfs)
  dirs[lazyfs]=$work/lazy-mnt
fi
echo "fio on the $fio_where; faultfs: $serve${1:+ $1}${BASELINE:+; baseline: $BASELINE}; sides: ${sides[*]}; $rounds rotated rounds"

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
    side=${sides[$(((round - 1 + k) % n))]}
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
nf=$(median <<<"${results[native-f]}"); ff=$(median <<<"${results[faultfs-f]}")
ns=$(median <<<"${results[native-s]}"); fs=$(median <<<"${results[faultfs-s]}")
nc=$(median <<<"${results[native-c]}"); fc=$(median <<<"${results[faultfs-c]}")
awk -v nf="$nf" -v ff="$ff" -v ns="$ns" -v fs="$fs" -v nc="$nc" -v fc="$fc" 'BEGIN {
  printf "4k write+fsync: faultfs/native %.2fx (target >= 2x)\n", ff / nf
  printf "4 jobs:         faultfs/native %.2fx\n", fc / nc
  printf "1m seq write:   faultfs/native %.2fx (target >= 0.9x)\n", fs / ns
}'
if [ -n "$base_pid" ]; then
  bf=$(median <<<"${results[baseline-f]}"); bs=$(median <<<"${results[baseline-s]}")
  bc=$(median <<<"${results[baseline-c]}")
  awk -v bf="$bf" -v ff="$ff" -v bs="$bs" -v fs="$fs" -v nf="$nf" -v ns="$ns" -v bc="$bc" -v fc="$fc" -v nc="$nc" 'BEGIN {
    printf "4k write+fsync: faultfs/baseline %.2fx (baseline/native %.2fx)\n", ff / bf, bf / nf
    printf "4 jobs:         faultfs/baseline %.2fx (baseline/native %.2fx)\n", fc / bc, bc / nc
    printf "1m seq write:   faultfs/baseline %.2fx (baseline/native %.2fx)\n", fs / bs, bs / ns
  }'
fi
if [ -n "$lazy_pid" ]; then
  lf=$(median <<<"${results[lazyfs-f]}"); ls_=$(median <<<"${results[lazyfs-s]}")
  lc=$(median <<<"${results[lazyfs-c]}")
  awk -v lf="$lf" -v ff="$ff" -v ls="$ls_" -v fs="$fs" -v lc="$lc" -v fc="$fc" 'BEGIN {
    printf "4k write+fsync: faultfs/LazyFS %.2fx (target >= 3x)\n", ff / lf
    printf "4 jobs:         faultfs/LazyFS %.2fx\n", fc / lc
    printf "1m seq write:   faultfs/LazyFS %.2fx\n", fs / ls
  }'
fi
