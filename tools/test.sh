#!/usr/bin/env bash
# The test command: cargo test --all-targets beside throwaway PostgreSQL, Prometheus, Slurm
# and Chromium (installed and started as root when missing; see tools/with-services.sh),
# then the Python package's tests (tools/python-test.sh). Tests that need a service say they
# were skipped without it, and fail under CI=true.
#
#   tools/test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/with-services.sh cargo test --all-targets "$@"
exec tools/python-test.sh
