#!/usr/bin/env bash
# Renders a stored report.json to HTML and screenshots it with headless
# Chromium (Debian's `chromium` package), so a person can check that the
# page reads well. Fails if the page did not render to a non-trivial image.
#
#   reports/screenshot.sh crashlab-results/<run>/report.json [out.png]
set -euo pipefail
report=${1:?usage: reports/screenshot.sh REPORT.json [OUT.png]}
png=${2:-${report%.json}.png}
here=$(cd "$(dirname "$0")/.." && pwd)
crashlab=${CRASHLAB:-$here/target/debug/crashlab}
command -v chromium >/dev/null || { echo "chromium is not installed: apt-get install chromium" >&2; exit 2; }
html=$(mktemp --suffix=.html)
trap 'rm -f "$html"' EXIT
"$crashlab" report "$report" --format html --out "$html"
timeout 120 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
  --window-size=1200,2400 --screenshot="$png" "file://$html" 2>/dev/null
size=$(stat -c %s "$png")
# A blank 1200x2400 page compresses to a few KiB; the matrix, three charts
# and the tables take well over 100 KiB.
if [ "$size" -lt 100000 ]; then
  echo "screenshot $png is only $size bytes: the page did not render" >&2
  exit 1
fi
echo "screenshot: $png ($size bytes)"
