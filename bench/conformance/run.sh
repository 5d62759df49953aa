#!/usr/bin/env bash
# Run one group of the ETSI NGSI-LD test suite (Robot Framework) against a broker.
#
#   run.sh BASE_URL GROUP_PATH [extra robot args ...]
#
#   BASE_URL    broker API root. The suite expects it WITH /ngsi-ld/v1
#               (e.g. http://127.0.0.1:8000/ngsi-ld/v1); if it is missing it is appended.
#   GROUP_PATH  folder or .robot file, relative to the suite root (or absolute), e.g.
#               TP/NGSI-LD/ContextInformation/Provision
#               TP/NGSI-LD/jsonldContext
#               TP/NGSI-LD/ContextInformation/Provision/Entities/CreateEntity/001_01.robot
#   extra args  passed to robot, e.g. --include e-create   --exclude sub-mqtt-notification
#               -t "001_01_01*"   --dryrun
#
# Environment overrides (defaults in brackets):
#   TEMPORAL_URL   [BASE_URL]            temporal_api_url
#   NOTIFY_HOST    [127.0.0.1]           notification receiver the suite starts (bind + URL given to broker)
#   NOTIFY_PORT    [8085]
#   CSOURCE_HOST   [127.0.0.1]           context-source mock the suite starts (DistributedOperations)
#   CSOURCE_PORT   [8086]
#   CTXSRV_HOST    [127.0.0.1]           @context file server the suite starts (jsonldContext, 556_01)
#   CTXSRV_PORT    [8087]
#   MQTT_HOST      [127.0.0.1]           MQTT broker for sub-mqtt-notification tests (not started by the suite)
#   MQTT_PORT2     [1884]                "non-default" MQTT port (suite default 8085 clashes with NOTIFY_PORT)
#   CORE_CONTEXT   [https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld]
#                  the URL under which the broker lists/serves its core @context in /jsonldContexts
#   RESULTS_ROOT   [/work/conformance/results]
#
# Exit code: 0 if every test passed, 1 if some failed, 2 on usage/setup error.
set -u

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SUITE="$HERE/suite"
VENV="$HERE/venv"

if [ $# -lt 2 ]; then
    sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi

BASE_URL="${1%/}"
GROUP="$2"
shift 2

case "$BASE_URL" in
    */ngsi-ld/v1) ;;
    *) BASE_URL="$BASE_URL/ngsi-ld/v1" ;;
esac

# Normalise the group path relative to the suite root.
case "$GROUP" in
    "$SUITE"/*) GROUP="${GROUP#"$SUITE"/}" ;;
esac
GROUP="${GROUP%/}"
if [ ! -e "$SUITE/$GROUP" ]; then
    echo "run.sh: no such group: $SUITE/$GROUP" >&2
    exit 2
fi
if [ ! -x "$VENV/bin/robot" ]; then
    echo "run.sh: $VENV/bin/robot missing (see README.md: create the venv first)" >&2
    exit 2
fi

# results/<group>/ : group path without the TP/NGSI-LD/ prefix, '/' -> '_', .robot stripped
NAME="${GROUP#TP/NGSI-LD/}"
NAME="${NAME#IOP_TP/NGSI-LD/}"
NAME="${NAME%.robot}"
NAME="$(printf '%s' "$NAME" | tr '/' '_')"
[ -n "$NAME" ] || NAME="all"
RESULTS_ROOT="${RESULTS_ROOT:-$HERE/results}"
OUT="$RESULTS_ROOT/$NAME"
rm -rf "$OUT"
mkdir -p "$OUT"

TEMPORAL_URL="${TEMPORAL_URL:-$BASE_URL}"
NOTIFY_HOST="${NOTIFY_HOST:-127.0.0.1}"
NOTIFY_PORT="${NOTIFY_PORT:-8085}"
CSOURCE_HOST="${CSOURCE_HOST:-127.0.0.1}"
CSOURCE_PORT="${CSOURCE_PORT:-8086}"
CTXSRV_HOST="${CTXSRV_HOST:-127.0.0.1}"
CTXSRV_PORT="${CTXSRV_PORT:-8087}"
MQTT_HOST="${MQTT_HOST:-127.0.0.1}"
MQTT_PORT2="${MQTT_PORT2:-1884}"
CORE_CONTEXT="${CORE_CONTEXT:-https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld}"

echo "suite   : $SUITE ($(git -C "$SUITE" rev-parse --short HEAD 2>/dev/null))"
echo "broker  : $BASE_URL   (temporal: $TEMPORAL_URL)"
echo "group   : $GROUP"
echo "mocks   : notify $NOTIFY_HOST:$NOTIFY_PORT  csource $CSOURCE_HOST:$CSOURCE_PORT  ctx-server $CTXSRV_HOST:$CTXSRV_PORT"
echo "results : $OUT"

# The suite resolves every resource as ${EXECDIR}/..., so robot MUST run from the suite root.
# Command-line --variable values override resources/variables.py.
cd "$SUITE" || exit 2
"$VENV/bin/robot" \
    --outputdir "$OUT" \
    --consolewidth 120 \
    --consolecolors off \
    --variable "url:$BASE_URL" \
    --variable "temporal_api_url:$TEMPORAL_URL" \
    --variable "notification_server_host:$NOTIFY_HOST" \
    --variable "notification_server_port:$NOTIFY_PORT" \
    --variable "context_source_host:$CSOURCE_HOST" \
    --variable "context_source_port:$CSOURCE_PORT" \
    --variable "context_server_host:$CTXSRV_HOST" \
    --variable "context_server_port:$CTXSRV_PORT" \
    --variable "mqtt_broker_host:$MQTT_HOST" \
    --variable "mqtt_broker_non_default_port:$MQTT_PORT2" \
    --variable "core_context:$CORE_CONTEXT" \
    "$@" \
    "$GROUP" > "$OUT/console.log" 2>&1
RC=$?
tail -n 8 "$OUT/console.log"

if [ ! -s "$OUT/output.xml" ]; then
    echo "run.sh: robot produced no output.xml (rc=$RC); see $OUT/console.log" >&2
    exit 2
fi

"$VENV/bin/python" "$HERE/summary.py" --totals "$OUT/output.xml"
[ "$RC" -eq 0 ] && exit 0 || exit 1
