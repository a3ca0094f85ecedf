#!/usr/bin/env bash
# Builds the VM API provider into a WebAssembly component.
#
#   examples/python-provider/build.sh [OUT.wasm]     (default: target/python-provider/vmapi.wasm)
#
# Uses componentize-py 0.25.1 (PyPI) from the venv `tests/run` creates under
# target/test-peers/venv, installing it there when missing (set
# SOAR_NO_PEER_INSTALL=1 to fail instead, as the tests do). `--stub-wasi`
# makes a component that imports only the soar:plugin world.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/target/python-provider/vmapi.wasm}"
venv="$repo/target/test-peers/venv"
cpy="${COMPONENTIZE_PY:-$venv/bin/componentize-py}"

if [ ! -x "$cpy" ]; then
    if [ "${SOAR_NO_PEER_INSTALL:-}" = 1 ]; then
        echo "build.sh: componentize-py is not installed ($cpy); run ./tests/run once (it installs the test peers), or run this script without SOAR_NO_PEER_INSTALL" >&2
        exit 3
    fi
    echo "build.sh: installing componentize-py 0.25.1 into $venv" >&2
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check 'componentize-py==0.25.1'
fi

mkdir -p "$(dirname "$out")"
# componentize-py refuses to run where a generated `wit_world/` exists, and
# writes caches next to the sources: build from a scratch copy.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
cd "$work"
"$cpy" -d "$repo/wit/since_v0.1.0" -w plugin componentize --stub-wasi app -o "$out.tmp"
mv "$out.tmp" "$out"
echo "built $out ($(wc -c <"$out") bytes)" >&2
