#!/usr/bin/env bash
# The GPU device check: runs mom's CUDA paths against the CPU and against their bare
# references and prints ONE table (check | result | target | status), in markdown, with
# the date and the GPU above it. Under 5 minutes on a machine with a GPU; on one without
# a usable CUDA device every check is reported "skipped" with the reason, in seconds.
#
#   bash scripts/device_check.sh              # from anywhere; uses the repository's .venv
#   PYTHON=/path/to/python bash scripts/device_check.sh
#   DEVICE_CHECK_TIMEOUT_MINE=150 bash scripts/device_check.sh   # a check's limit, seconds
#   DEVICE_CHECK_TRYOUT=1 bash scripts/device_check.sh  # the checks' code on the CPU at small
#                                                       # sizes (minutes; the numbers mean nothing)
#
# Each check runs in a process of its own under its time limit (embed 60 s, mine 90 s,
# train 90 s, ddp 50 s by default); one that overruns is reported "timeout" and the
# others still run. Exit status: 0 when every check passed or was skipped, 1 when one
# failed, errored or timed out. The checks themselves: scripts/device_check.py.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -n "${PYTHON:-}" ]; then
  PY="$PYTHON"
elif [ -x .venv/bin/python ]; then
  PY=.venv/bin/python
else
  PY=python3
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's mom
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg

CHECKS=(embed mine train ddp)
export LIMIT_embed="${DEVICE_CHECK_TIMEOUT_EMBED:-60}" LIMIT_mine="${DEVICE_CHECK_TIMEOUT_MINE:-90}"
export LIMIT_train="${DEVICE_CHECK_TIMEOUT_TRAIN:-90}" LIMIT_ddp="${DEVICE_CHECK_TIMEOUT_DDP:-50}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/mom-device-check.XXXXXX")"
KEEP=0
cleanup() { if [ "$KEEP" = 1 ]; then echo "logs: $WORK" >&2; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# why the checks must be skipped; empty when a CUDA device is usable
if ! reason="$("$PY" scripts/device_check.py probe --dir "$WORK" 2>"$WORK/probe.log")"; then
  reason="the probe failed with $PY: $(tail -n 1 "$WORK/probe.log" 2>/dev/null || true)"
fi
RUN_ARGS=(--device cuda)
TABLE_ARGS=(--checks "${CHECKS[@]}")
if [ "${DEVICE_CHECK_TRYOUT:-0}" = 1 ]; then
  reason=""
  RUN_ARGS=(--device cpu --small)
  TABLE_ARGS+=(--tryout)
fi

if [ -z "$reason" ]; then
  have_timeout=0
  command -v timeout >/dev/null 2>&1 && have_timeout=1
  for c in "${CHECKS[@]}"; do
    limit_var="LIMIT_$c"
    limit="${!limit_var}"
    echo "device check: $c (limit ${limit} s) ..." >&2
    rc=0
    if [ "$have_timeout" = 1 ]; then  # the hard limit; the check's own soft one comes first
      DEVICE_CHECK_LIMIT="$limit" timeout -k 5 "$((limit + 5))" \
        "$PY" scripts/device_check.py run "$c" --out "$WORK/$c.json" "${RUN_ARGS[@]}" >"$WORK/$c.log" 2>&1 || rc=$?
    else
      DEVICE_CHECK_LIMIT="$limit" \
        "$PY" scripts/device_check.py run "$c" --out "$WORK/$c.json" "${RUN_ARGS[@]}" >"$WORK/$c.log" 2>&1 || rc=$?
    fi
    echo "$rc" >"$WORK/$c.rc"
  done
fi

status=0
if [ -n "$reason" ]; then
  "$PY" scripts/device_check.py table --dir "$WORK" "${TABLE_ARGS[@]}" --skip "$reason" || status=$?
else
  "$PY" scripts/device_check.py table --dir "$WORK" "${TABLE_ARGS[@]}" || status=$?
fi
if [ ! -e "$WORK/table.done" ]; then  # the table could not be printed (no usable python)
  echo "| check | result | target | status |"
  echo "|---|---|---|---|"
  for c in "${CHECKS[@]}"; do
    if [ -n "$reason" ]; then
      echo "| $c | $reason | - | skipped |"
    else
      echo "| $c | the table could not be printed with $PY (logs kept) | - | error |"
    fi
  done
  if [ -n "$reason" ]; then status=0; else status=1; fi
fi
[ "$status" = 0 ] || KEEP=1
exit "$status"
