#!/usr/bin/env bash
# Builds the VM API provider into a WebAssembly component with jco.
#
#   examples/js-provider/build.sh [OUT.wasm]    (default: target/js-provider/vmapi-js.wasm)
#
# Installs the pinned jco and componentize-js (package.json) from npm into
# target/test-peers/js-provider on first use, and again when package.json
# changes (set SOAR_NO_PEER_INSTALL=1 to fail instead). Uses the Node that
# ./tests/run installs under target/test-peers/npm when present, else the
# one on PATH. `--disable http --disable fetch-event` keeps the component
# from importing wasi:http, which soar does not link: the network is reached
# through soar:plugin/http.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$repo/target/js-provider/vmapi-js.wasm}"
peers="$repo/target/test-peers/js-provider"
node_bin="$repo/target/test-peers/npm/node_modules/node/bin"
[ -x "$node_bin/node" ] && export PATH="$node_bin:$PATH"

if [ ! -x "$peers/node_modules/.bin/jco" ] || ! cmp -s "$here/package.json" "$peers/package.json"; then
    if [ "${SOAR_NO_PEER_INSTALL:-}" = 1 ]; then
        echo "build.sh: jco is not installed in $peers; run this script once without SOAR_NO_PEER_INSTALL" >&2
        exit 3
    fi
    echo "build.sh: installing jco and componentize-js into $peers" >&2
    mkdir -p "$peers"
    cp "$here/package.json" "$peers/package.json"
    (cd "$peers" && npm install --no-audit --no-fund --loglevel=error >&2)
fi

mkdir -p "$(dirname "$out")"
"$peers/node_modules/.bin/jco" componentize "$here/provider.js" \
    --wit "$repo/wit" --world-name plugin \
    --disable http --disable fetch-event -o "$out.tmp" >&2
mv "$out.tmp" "$out"
echo "built $out ($(wc -c <"$out") bytes)" >&2
