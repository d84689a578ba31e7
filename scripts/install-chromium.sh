#!/usr/bin/env bash
# Installs Debian's Chromium: the browser that the HTML report's test
# (host/internal/render, TestReportInBrowser) drives headless through the
# DevTools protocol (chromedp). .ci/run calls this when CI=true, where
# that test fails without a browser; elsewhere the test skips, loudly, and
# running this once (as root) makes it run.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
	echo "install-chromium: needs root: apt-get update && apt-get install -y chromium" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium
chromium --version 2>/dev/null || true
