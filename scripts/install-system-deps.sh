#!/usr/bin/env bash
# System packages the test suite needs that pip cannot provide: Debian's headless
# Chromium and its matching ChromeDriver (tests/test_mlflow_ui.py drives the MLflow UI).
# Idempotent: does nothing when both binaries are present. Needs root (or sudo).
set -euo pipefail

PACKAGES=(chromium chromium-driver)

have_all() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1
}

if have_all; then
    echo "install-system-deps: chromium and chromedriver present, nothing to do"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install-system-deps: need root to install ${PACKAGES[*]}" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends "${PACKAGES[@]}"

if ! have_all; then
    echo "install-system-deps: chromium/chromedriver still missing after install" >&2
    exit 1
fi
chromium --version || true
chromedriver --version || true
