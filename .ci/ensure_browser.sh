#!/usr/bin/env bash
# Makes sure Debian's chromium + chromium-driver are there for the browser test (tests/test_browser.py).
# Installs them as root with apt-get when missing; otherwise says what to install (the test then skips,
# except with CI=true, where it fails).
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing chromium and chromium-driver for the browser test (apt-get)..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    && exit 0
  echo "apt-get could not install chromium" >&2
fi
echo "The browser test needs Chromium: install the Debian/Ubuntu packages 'chromium' and 'chromium-driver'" \
     "(or set RLCOURSE_CHROMIUM to a Chromium binary). Without it the browser test is skipped." >&2
exit 0
