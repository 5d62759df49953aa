#!/usr/bin/env bash
# group.sh GROUP_PATH [RESULTS_ROOT] : a fresh server (serve.sh) from $SRC (default: this worktree's src) on
# :${PORT:-8010}, the group run against it (run.sh, v1.8 cases, no MQTT), the server stopped.
set -u
cd /work/conformance
export PORT=${PORT:-8010} PIDFILE=${PIDFILE:-/tmp/cb-conf-$PORT.pid}
export SRC=${SRC:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../../src" 2>/dev/null && pwd || echo /work/main/src)}
./serve.sh
RESULTS_ROOT=${2:-/work/conformance/results} ./run.sh http://127.0.0.1:$PORT "$1" --exclude since_v1.9.1 --exclude sub-mqtt-notification
kill $(cat $PIDFILE)
