#!/usr/bin/env bash
# The page of `agesynth serve` in a real browser: headless Chromium driven
# through WebDriver by crates/agesynth-serve/examples/browser.rs, which
# starts the server and chromedriver itself (on free loopback ports) and
# stops both. It uploads a photo of a synthetic person, moves the age
# slider, checks the aged photos, asks for all ages, saves a screenshot,
# and checks that a bad upload shows its message.
#
# Usage: scripts/browser-test.sh [SCREENSHOT.png]
#        (default: $CARGO_TARGET_DIR/browser-test/serve.png, target/ by default)
# With AGESYNTH_SKIP_BUILD=1 it uses the agesynth binary and the example
# already built in the target folder.
#
# Debian's chromium and chromium-driver are installed with apt-get when
# missing. Where they are missing and cannot be installed (no apt-get, no
# root), the test is skipped with a message and the script exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

target="${CARGO_TARGET_DIR:-target}"
shot="${1:-$target/browser-test/serve.png}"

skip() {
  echo "skipping the browser test: $*"
  exit 0
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  command -v apt-get >/dev/null || skip "chromium or chromedriver is missing and apt-get is unavailable"
  if [ "$(id -u)" = 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    skip "chromium or chromedriver is missing and apt-get needs root"
  fi
  echo "installing chromium and chromium-driver with apt-get"
  "${sudo[@]}" apt-get update -qq || skip "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver >/dev/null || skip "apt-get could not install chromium and chromium-driver"
  command -v chromium >/dev/null && command -v chromedriver >/dev/null \
    || skip "chromium or chromedriver still missing after apt-get"
fi
chromium --version 2>/dev/null || true

if [ "${AGESYNTH_SKIP_BUILD:-0}" != 1 ]; then
  # One build over the workspace, so that it shares the features (and the
  # compiled crates) of `cargo test --workspace`.
  cargo build --workspace --bin agesynth --example browser
fi
"$target/debug/examples/browser" \
  --agesynth "$target/debug/agesynth" \
  --chromedriver "$(command -v chromedriver)" \
  --chromium "$(command -v chromium)" \
  --screenshot "$shot"
