#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install what the project needs.
#   bash scripts/setup_env.sh            # runtime: torch, torchvision, numpy, pillow, dominate, visdom
#   bash scripts/setup_env.sh --dev      # also the test tools and the dataset-preparation extras
# Set PYTHON to choose the interpreter (default: python3), VENV to choose the folder (default: .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
# Run pip, hiding the noise of unreachable local index folders, and keep pip's exit status.
quiet() {
    local log status=0
    log=$(mktemp)
    "$@" >"$log" 2>&1 || status=$?
    grep -v "is ignored: it is neither a file nor a directory" "$log" || true
    rm -f "$log"
    return $status
}
# visdom 0.2.4 ships only as a source package whose setup.py needs pkg_resources (setuptools < 81),
# so it is built without build isolation, against the setuptools installed here.
# torch pulls in the newest setuptools, so the pin comes after it, in the same call as visdom.
quiet "${PIP[@]}" install -q -r requirements.txt
quiet "${PIP[@]}" install -q "setuptools<81" wheel
quiet "${PIP[@]}" install -q --no-build-isolation "setuptools<81" -r requirements-visdom.txt
# Visdom's server fetches its web assets from CDNs at every start and exits offline; take the same files from the
# npm registry once (a no-op when they are in place; docs/MONITORING.md). Training does not need them: only warn.
"$VENV/bin/python" scripts/install_visdom_assets.py ||
    echo "warning: Visdom's web assets are not installed; see docs/MONITORING.md (training is not affected)" >&2
if [ "${1:-}" = "--dev" ]; then
    quiet "${PIP[@]}" install -q -r requirements-dev.txt
fi
"$VENV/bin/python" - <<'PY'
import torch, torchvision, numpy, PIL, dominate
print(f"environment ready: torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"CUDA available: {torch.cuda.is_available()}")
PY
