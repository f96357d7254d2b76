#!/usr/bin/env bash
# Build llama.cpp's `llama-server` (CPU only) from the sources vendored in the llama-cpp-python
# sdist on PyPI, and install it into the project's cache. Idempotent: does nothing when the binary
# for this version is already installed. Nothing is downloaded except that sdist, through pip.
#
#   scripts/build_llama_server.sh            # uses python3 / pip from $PY (default: python3)
#   PY=.venv/bin/python scripts/build_llama_server.sh
#
# Result: <cache>/llama.cpp/<version>/bin/llama-server, plus the vendored converter
# (convert_lora_to_gguf.py, convert_hf_to_gguf.py, conversion/ and gguf-py) beside it, where <cache> is
# $LLM_AUCTION_CACHE or ~/.cache/llm-auction-env. Set JOBS to change the build parallelism (2).
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
PY="${PY:-python3}"
JOBS="${JOBS:-2}"
CACHE="${LLM_AUCTION_CACHE:-$HOME/.cache/llm-auction-env}"
PREFIX="$CACHE/llama.cpp/$VERSION"
BIN="$PREFIX/bin/llama-server"

if [[ -x "$BIN" && -f "$PREFIX/.complete" ]]; then
    echo "llama-server $VERSION already built: $BIN"
    exit 0
fi

mkdir -p "$CACHE/llama.cpp"
WORK="$(mktemp -d "$CACHE/llama.cpp/.build-$VERSION.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
start=$(date +%s)

echo "downloading the llama-cpp-python $VERSION sdist from PyPI"
"$PY" -m pip download -q --no-deps --no-binary :all: \
    "llama-cpp-python==$VERSION" -d "$WORK/sdist"
tar -xzf "$WORK"/sdist/llama_cpp_python-*.tar.gz -C "$WORK"
SRC="$(echo "$WORK"/llama_cpp_python-*/vendor/llama.cpp)"
[[ -d "$SRC/tools/server" ]] || { echo "error: $SRC/tools/server missing from the sdist" >&2; exit 1; }

GEN=()
command -v ninja >/dev/null && GEN=(-G Ninja)
echo "configuring $SRC"
cmake -S "$SRC" -B "$WORK/build" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
    -DBUILD_SHARED_LIBS=OFF > "$WORK/configure.log" 2>&1 \
    || { cat "$WORK/configure.log" >&2; exit 1; }
echo "building llama-server with $JOBS jobs (a few minutes)"
cmake --build "$WORK/build" --target llama-server -j "$JOBS" > "$WORK/build.log" 2>&1 \
    || { tail -50 "$WORK/build.log" >&2; exit 1; }

STAGE="$(mktemp -d "$CACHE/llama.cpp/.stage-$VERSION.XXXXXX")"
mkdir -p "$STAGE/bin"
cp "$WORK/build/bin/llama-server" "$STAGE/bin/"
cp "$SRC/convert_lora_to_gguf.py" "$SRC/convert_hf_to_gguf.py" "$STAGE/"
cp -r "$SRC/gguf-py" "$STAGE/gguf-py"
cp -r "$SRC/conversion" "$STAGE/conversion"
touch "$STAGE/.complete"
rm -rf "$PREFIX"
mv "$STAGE" "$PREFIX"
echo "llama-server $VERSION installed at $BIN ($(( $(date +%s) - start )) s)"
