#!/usr/bin/env bash
# Set up .venv with the test tools and run the whole test suite (slow end-to-end tests included).
#   bash scripts/test.sh                # everything
#   bash scripts/test.sh -m "not slow"  # skip the end-to-end tests; any pytest arguments work
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh --dev
exec .venv/bin/python -m pytest -q "$@"
