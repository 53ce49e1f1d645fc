#!/usr/bin/env bash
# Renders an `agnas report … --out report.html` page to a PNG with headless Chromium (Debian's `chromium` package),
# so that a person can look at it: tools/render_report.sh report.html report.png [width] [height]
set -euo pipefail
HTML="${1:?usage: $0 report.html out.png [width] [height]}"
PNG="${2:?usage: $0 report.html out.png [width] [height]}"
WIDTH="${3:-1200}"
HEIGHT="${4:-6000}"
CHROMIUM="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
[ -n "$CHROMIUM" ] || { echo "no chromium: install Debian's chromium package (apt-get install chromium)" >&2; exit 2; }
PROFILE="$(mktemp -d)"
trap 'rm -rf "$PROFILE"' EXIT
# The page needs no network; these flags keep Chromium from trying to reach one at all.
"$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$PROFILE" \
  --window-size="$WIDTH,$HEIGHT" --screenshot="$(realpath -m "$PNG")" "file://$(realpath "$HTML")" 2>/dev/null
echo "$PNG"
