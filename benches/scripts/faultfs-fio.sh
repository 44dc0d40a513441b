#!/usr/bin/env bash
# faultfs overhead, measured with fio inside a container: the same backing
# directory bind-mounted into a crashlab/fio container once through faultfs
# and once directly, 3 alternating rounds, medians. Issue target: 4 KiB
# write+fsync IOPS >= 1.5x native (an fsync on faultfs need not reach the
# disk: the power cut is simulated; `fsync-reaches-disk` turns that off) and
# 1 MiB sequential write MiB/s >= 70% of native.
#
#   benches/scripts/faultfs-fio.sh [--history]   (root, Docker, image crashlab/fio)
#
# The mount is a `host-kill` cycle's: no unsynced history recorded. With
# --history it is a `crash-states` cycle's, which records it.
#
# A benchmark script, not part of the product: it drives the docker CLI.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 2; }
cargo build -q --release -p crashlab-faultfs --example serve
cargo run -q --release -p crashlab -- images list | grep -q 'fio .* built' || cargo run -q --release -p crashlab -- images build fio

work=$(mktemp -d /var/tmp/faultfs-fio.XXXXXX)
mkdir -p "$work/backing" "$work/mnt"
exec 3> >(exec target/release/examples/serve "$work/backing" "$work/mnt" "$@" 2>/dev/null)
serve_pid=$!
cleanup() { exec 3>&-; wait "$serve_pid" 2>/dev/null || true; umount -l "$work/mnt" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 50); do mountpoint -q "$work/mnt" && break; sleep 0.1; done
mountpoint -q "$work/mnt" || { echo "faultfs did not mount" >&2; exit 1; }

fio_in_container() { # DIR NAME FIO-ARGS... -> prints fio JSON
  local dir=$1; shift
  docker run --rm -v "$dir:/data" --entrypoint fio crashlab/fio \
    --directory=/data --ioengine=psync --output-format=json --group_reporting "$@"
}
fsync4k() { fio_in_container "$1" --name=f --rw=randwrite --bs=4k --size=64m --fsync=1 --runtime=10 --time_based \
  | jq '.jobs[0].write.iops'; }
seq1m() { fio_in_container "$1" --name=s --rw=write --bs=1m --size=1g --end_fsync=1 \
  | jq '.jobs[0].write.bw / 1024'; }
# The rounds' figures, one a line; blank lines (the one `tr` leaves after
# the last figure) are dropped before sorting, or they would sort first and
# the smallest figure would be printed as the median.
median() { grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A results
for round in 1 2 3; do
  for side in native faultfs; do
    dir=$work/backing; [ "$side" = faultfs ] && dir=$work/mnt
    f=$(fsync4k "$dir"); s=$(seq1m "$dir")
    printf 'round %s %-7s 4k write+fsync %8.0f IOPS   1m seq write %6.0f MiB/s\n' "$round" "$side" "$f" "$s"
    results[$side-f]+="$f "; results[$side-s]+="$s "
  done
done
nf=$(tr ' ' '\n' <<<"${results[native-f]}" | median); ff=$(tr ' ' '\n' <<<"${results[faultfs-f]}" | median)
ns=$(tr ' ' '\n' <<<"${results[native-s]}" | median); fs=$(tr ' ' '\n' <<<"${results[faultfs-s]}" | median)
awk -v nf="$nf" -v ff="$ff" -v ns="$ns" -v fs="$fs" 'BEGIN {
  printf "median 4k write+fsync: faultfs %.0f vs native %.0f IOPS = %.2fx (target >= 1.5x)\n", ff, nf, ff / nf
  printf "median 1m seq write:   faultfs %.0f vs native %.0f MiB/s = %.0f%% (target >= 70%%)\n", fs, ns, 100 * fs / ns
}'
