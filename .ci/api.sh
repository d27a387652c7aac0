#!/usr/bin/env bash
# The public API of each library crate, listed in .ci/api/<crate>.txt from rustdoc's JSON (every
# public path with its kind and signature, and each public type's trait impls), so that an API
# change shows in review and is deliberate.
#
#   bash .ci/api.sh          regenerate the listings and diff them with the committed ones (CI)
#   bash .ci/api.sh --bless  rewrite the committed listings (after a deliberate API change)
#
# rustdoc's JSON output is unstable: RUSTC_BOOTSTRAP=1 lets the stable toolchain produce it. It
# builds in its own target directory (target/api), so the bootstrap flag never invalidates the
# main build. Every feature of each crate is on.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-$PWD/target}/api"
bless=false
[ "${1:-}" = "--bless" ] && bless=true
status=0
for crate in activity-core activity-derive activity-seaorm activity-nats; do
  RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$target" cargo rustdoc -q -p "$crate" --lib --all-features \
    -- -Z unstable-options --output-format json
  json="$target/doc/${crate//-/_}.json"
  listing=".ci/api/$crate.txt"
  if $bless; then
    python3 .ci/api_listing.py "$json" > "$listing"
    echo "$listing: $(wc -l < "$listing") items"
  elif ! python3 .ci/api_listing.py "$json" | diff -u "$listing" - ; then
    status=1
  else
    echo "$listing: unchanged ($(wc -l < "$listing") items)"
  fi
done
if [ "$status" != 0 ]; then
  echo "The public API differs from .ci/api/ (diff above: - committed, + now)."
  echo "If the change is deliberate, regenerate the listings and commit them: bash .ci/api.sh --bless"
fi
exit "$status"
