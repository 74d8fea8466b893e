#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`.
#
# On a Debian or Ubuntu host without one, as root: install Debian's docker.io when dockerd is
# missing, then start the engine (systemd when it runs, else dockerd in the background with its
# log in /var/log/dockerd.log) and wait up to 60 s for the socket. Used by `make engine`,
# `make up`, `make test` and .ci/run.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
WAIT_SECONDS=${DOCKER_WAIT_SECONDS:-60}

say() { printf 'ensure-docker: %s\n' "$*" >&2; }

answers() { docker info >/dev/null 2>&1; }

if command -v docker >/dev/null 2>&1 && answers; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    say "no Docker engine answers, and starting one needs root: run as root or start dockerd"
    exit 1
fi

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "no Docker engine and no apt-get: install Docker for this system, then retry"
        exit 1
    fi
    say "installing docker.io"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q docker.io
fi

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl start docker.service >/dev/null 2>&1 || true
fi

if ! answers; then
    pidfile=/var/run/docker.pid
    if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        rm -f "$pidfile"  # left by an engine that did not stop cleanly; dockerd refuses to start
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        say "starting dockerd (log: $DOCKERD_LOG)"
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
    fi
fi

for _ in $(seq "$WAIT_SECONDS"); do
    if answers; then
        exit 0
    fi
    sleep 1
done
say "the Docker engine did not answer within ${WAIT_SECONDS} s; see $DOCKERD_LOG"
exit 1
