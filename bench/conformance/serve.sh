#!/usr/bin/env bash
# Start citybase as an open NGSI-LD broker on a fresh SQLite (or $DB_URL) at 127.0.0.1:${PORT:-8000},
# with the suite's @contexts preloaded. Prints the PID. Stop with: kill $(cat $PIDFILE)
set -eu
PORT=${PORT:-8000}
PIDFILE=${PIDFILE:-/tmp/cb-conf.pid}
# SRC: a worktree's src/ to run instead of /work/main's
[ -n "${SRC:-}" ] && export PYTHONPATH=$SRC
DATA=$(mktemp -d /tmp/cb-conf-XXXX)
export CITYBASE_DATA_DIR=$DATA CITYBASE_PORT=$PORT CITYBASE_TWIN_ANONYMOUS=write
# the suite's temporal pagination cases assume 2×20 instances are paged and 2×2×5 are not
export CITYBASE_TWIN_TEMPORAL_LIMIT=${TEMPORAL_LIMIT:-10}
export CITYBASE_DATABASE_URL=${DB_URL:-sqlite:///$DATA/citybase.sqlite3}
export CITYBASE_BUS_URL=${BUS_URL:-memory://}
CB=/work/main/.venv/bin/citybase
$CB db upgrade > $DATA/setup.log 2>&1
$CB twin contexts load /work/conformance/citybase-contexts >> $DATA/setup.log 2>&1
nohup $CB serve > $DATA/server.log 2>&1 &
echo $! > $PIDFILE
for i in $(seq 1 60); do curl -sf http://127.0.0.1:$PORT/api/v1/health >/dev/null && break; sleep 0.5; done
echo "citybase on :$PORT (data $DATA, pid $(cat $PIDFILE))"
