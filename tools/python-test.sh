#!/usr/bin/env bash
# The Python package's tests: builds python/ (PyO3, through maturin) into the virtual
# environment target/venv-py — `pip install maturin pytest codecarbon==3.3.2` and the hosted-AI clients, then `pip install ./python`,
# the extension compiled once into target/python and reused, with CodeCarbon 3.3.2 beside it — and runs pytest on it against
# the CLI built from the same library. Without PyPI (offline) it says so and skips, except
# under CI=true, where that fails.
#
#   tools/python-test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv-py
# CodeCarbon itself, beside decompute's drop-in for it, so the tests compare the two; the
# official OpenAI, Anthropic, Google GenAI and Mistral clients, which decompute.api
# instruments, run against a local stub server.
codecarbon=codecarbon==3.3.2
clients="openai==3.63.0 anthropic==2.10.0 google-genai==3.6.1 mistralai==3.7.0"
if [ ! -x "$venv/bin/maturin" ] || [ ! -x "$venv/bin/pytest" ] || [ ! -x "$venv/bin/codecarbon" ] \
    || ! "$venv/bin/python" -c "import openai, anthropic, google.genai, mistralai.client" 2>/dev/null; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian ships venv and pip apart from python3.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            apt-get update -qq >/dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                python3-venv python3-pip >/dev/null
        fi
        rm -rf "$venv"
        python3 -m venv "$venv"
    fi
    # shellcheck disable=SC2086
    if ! "$venv/bin/pip" install -q maturin pytest "$codecarbon" $clients; then
        echo "tools/python-test.sh: cannot install maturin, pytest, $codecarbon and $clients from PyPI; the Python tests are skipped"
        [ "${CI:-}" = true ] && exit 1
        exit 0
    fi
fi
cargo build --quiet --bin decompute
PATH="$PWD/$venv/bin:$PATH" CARGO_TARGET_DIR="$PWD/target/python" \
    "$venv/bin/pip" install -q --no-build-isolation --force-reinstall --no-deps ./python
DECOMPUTE_BIN="$PWD/target/debug/decompute" "$venv/bin/python" -m pytest -q python/tests "$@"
