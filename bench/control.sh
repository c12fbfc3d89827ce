#!/usr/bin/env bash
# bench/run control: 20,000 pipelines over 50,000 topics applied through the
# API of one controller (DM_BENCH_PIPELINES / DM_BENCH_TOPICS to change).
exec python3 "$(dirname "$0")/control.py" "${DM_BIN:?}"
