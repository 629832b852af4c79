#!/bin/sh
# Install Debian's prometheus (prometheus, promtool) and prometheus-alertmanager
# (prometheus-alertmanager, amtool) when any of them is missing. Idempotent: does
# nothing when all are on PATH. Run as root (CI) or with sudo available.
#
# The packages may start system services on :9090/:9093; the tests never use those
# (tests/promstack.py starts its own servers on free 127.0.0.1 ports).
set -eu

have() { command -v "$1" >/dev/null 2>&1; }

need=""
if ! have prometheus || ! have promtool; then
    need="$need prometheus"
fi
if ! { have prometheus-alertmanager || have alertmanager; } || ! have amtool; then
    need="$need prometheus-alertmanager"
fi

if [ -z "$need" ]; then
    echo "install-prometheus: prometheus, promtool, alertmanager and amtool already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if have sudo; then SUDO="sudo"; else
        echo "install-prometheus: need root (or sudo) to install:$need" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# shellcheck disable=SC2086 # word splitting of the package list is intended
$SUDO apt-get install -y $need
echo "install-prometheus: installed:$need"
