#!/usr/bin/env bash
# The cost of reaching the fault filesystem through crashlab's volume
# driver: fio in a container on a `crashlab` volume (`docker run -v
# VOLUME:/data`: Docker asks the driver, which has the volume's mount
# holder mount it) against fio in a container on the same fault
# filesystem mounted by hand, bind-mounted (`-v MOUNTPOINT:/data`). Both
# sides are mounted by the same program and code (`crashlab volume hold`,
# which mounts as a `host-kill` cycle of `crashlab run` does: no unsynced
# history, fsync not reaching the disk), anew for each fio run, over a
# backing directory on the same disk; only the way in differs. Rotated
# rounds (round r starts with a different side), medians (range) and the
# ratio. Issue 22's target: the volume within 10 % of the mount (0.9x or
# more) on 4 KiB write+fsync IOPS and on 1 MiB sequential write MiB/s.
#
#   benches/scripts/volume-driver-fio.sh        (root, /dev/fuse, Docker)
#
# It needs `crashlab volume-driver` serving /run/docker/plugins/crashlab.sock
# (do not start a driver on another socket for this: Docker would retry it
# on every volume call after it stopped, until dockerd restarts) and the
# crashlab/fio image (`crashlab images build fio`).
#
# Environment:
#   CRASHLAB=PATH the crashlab binary whose `volume hold` mounts the by-hand
#                 side; use the driver's own (default: target/release/crashlab,
#                 built here).
#   ROUNDS=N      rounds (default 5).
#   SECONDS_=N    seconds of each 4 KiB write+fsync run (default 10).
#   SEQ_SIZE=S    bytes of each sequential write run, in fio's units
#                 (default 1g); many short rounds average a noisy machine
#                 better than a few long ones.
#
# A benchmark script, not part of the product.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v jq >/dev/null || { echo "needs jq (apt-get install jq)" >&2; exit 2; }
[ -S /run/docker/plugins/crashlab.sock ] \
  || { echo "no crashlab volume-driver serves /run/docker/plugins/crashlab.sock" >&2; exit 2; }
docker image inspect crashlab/fio >/dev/null 2>&1 \
  || { echo "needs the crashlab/fio image: crashlab images build fio" >&2; exit 2; }
rounds=${ROUNDS:-5}
secs=${SECONDS_:-10}
seq_size=${SEQ_SIZE:-1g}
crashlab=${CRASHLAB:-}
if [ -z "$crashlab" ]; then
  cargo build -q --release -p crashlab
  crashlab=target/release/crashlab
fi

work=$(mktemp -d /var/tmp/volume-driver-fio.XXXXXX)
volume=volume-driver-fio-$$
# The by-hand side: a volume directory as the driver makes one.
printf '{"name":"by-hand","fsync-reaches-disk":false,"history":false}' >"$work/volume.json"
mnt=$work/fs/mnt
hold_pid=
mount_by_hand() {
  "$crashlab" volume hold "$work" 2>/dev/null &
  hold_pid=$!
  for _ in $(seq 100); do mountpoint -q "$mnt" && return 0; sleep 0.1; done
  echo "crashlab volume hold did not mount $mnt" >&2
  exit 1
}
unmount_by_hand() {
  kill -TERM "$hold_pid" 2>/dev/null || true
  wait "$hold_pid" 2>/dev/null || true
  hold_pid=
}
cleanup() {
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  [ -z "$hold_pid" ] || unmount_by_hand
  umount -l "$mnt" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
docker volume create -d crashlab "$volume" >/dev/null
sides=(by-hand volume)
declare -A mounts=([by-hand]="$mnt:/data" [volume]="$volume:/data")
echo "fio in crashlab/fio containers; by hand: $crashlab volume hold, at $mnt; volume: $volume (driver crashlab); $rounds rotated rounds"

run_fio() { # SIDE FIO-ARGS... -> prints fio JSON; the files are removed after
  local side=$1; shift
  [ "$side" = volume ] || mount_by_hand
  docker run --rm -v "${mounts[$side]}" --entrypoint sh crashlab/fio -c \
    'fio --directory=/data --ioengine=psync --output-format=json --group_reporting "$@"; rm -f /data/f.* /data/s.*' \
    fio "$@"
  [ "$side" = volume ] || unmount_by_hand
}
fsync4k() { run_fio "$1" --name=f --rw=randwrite --bs=4k --size=64m --fsync=1 --runtime="$secs" --time_based \
  | jq '.jobs[0].write.iops'; }
seq1m() { run_fio "$1" --name=s --rw=write --bs=1m --size="$seq_size" --end_fsync=1 | jq '.jobs[0].write.bw / 1024'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
spread() { tr ' ' '\n' | grep -v '^$' | sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo, hi}'; }

declare -A results
for round in $(seq "$rounds"); do
  for k in 0 1; do
    side=${sides[$(((round - 1 + k) % 2))]}
    f=$(fsync4k "$side")
    s=$(seq1m "$side")
    printf 'round %s %-8s 4k write+fsync %8.0f IOPS   1m seq write %6.0f MiB/s\n' "$round" "$side" "$f" "$s"
    results[$side-f]+="$f "; results[$side-s]+="$s "
  done
done
for side in "${sides[@]}"; do
  printf '%-8s median 4k write+fsync %6.0f IOPS (%s)  1m seq write %4.0f MiB/s (%s)\n' "$side" \
    "$(median <<<"${results[$side-f]}")" "$(spread <<<"${results[$side-f]}")" \
    "$(median <<<"${results[$side-s]}")" "$(spread <<<"${results[$side-s]}")"
done
ff=$(median <<<"${results[by-hand-f]}"); vf=$(median <<<"${results[volume-f]}")
fs=$(median <<<"${results[by-hand-s]}"); vs=$(median <<<"${results[volume-s]}")
awk -v ff="$ff" -v vf="$vf" -v fs="$fs" -v vs="$vs" 'BEGIN {
  printf "4k write+fsync: volume/by-hand %.2fx (target >= 0.90x)\n", vf / ff
  printf "1m seq write:   volume/by-hand %.2fx (target >= 0.90x)\n", vs / fs
}'
