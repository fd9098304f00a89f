#!/usr/bin/env bash
# Makes sure Debian's chromium + chromium-driver are there for the browser tests (tests/test_browser.py,
# tests/test_site.py), and a CJK font (fonts-noto-cjk) so that Chromium draws the course's Chinese terms
# instead of empty boxes. Installs them as root with apt-get when missing; otherwise says what to install
# (the tests then skip, except with CI=true, where they fail).
set -u
need=()
if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then need+=(chromium chromium-driver); fi
if ! (command -v fc-list >/dev/null 2>&1 && fc-list : family | grep -qi "Noto Sans CJK"); then need+=(fonts-noto-cjk); fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing ${need[*]} for the browser tests (apt-get)..."
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    && exit 0
  echo "apt-get could not install ${need[*]}" >&2
fi
echo "The browser tests need Chromium and a CJK font: install the Debian/Ubuntu packages ${need[*]}" \
     "(or set RLCOURSE_CHROMIUM to a Chromium binary). Without Chromium the browser tests are skipped." >&2
exit 0
