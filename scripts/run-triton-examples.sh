#!/usr/bin/env bash
# Runs NVIDIA Triton's own Python client examples (triton-inference-server/client,
# src/python/examples), unchanged, against a running onnx-serving server, and prints PASS/FAIL per
# example with the last line it wrote. By hand only: it needs Python and Debian packages, which CI
# has not, so it is not part of `npm test` (test/e2e/triton-examples*.e2e.test.ts hold the same
# checks in Node).
#
# The server must serve the stand-in models:
#   npm run build:dev && node .build/scripts/build-models.js /tmp/triton-models --triton-examples
#   MODEL_REPOSITORY=/tmp/triton-models ADMIN_TOKEN=... node .build/src/main.js
# The examples use Triton's default ports, localhost:8000 (HTTP) and localhost:8001 (gRPC);
# memory_growth_test.py cannot be told otherwise.
#
# Environment:
#   HTTP_URL, GRPC_URL     host:port of the server (default localhost:8000, localhost:8001)
#   BUILD_DIR              where the client is assembled (default /tmp/tritonclient-build); not in the repo
#   TRITON_CLIENT_DIR      a checkout of triton-inference-server/client (default: cloned into BUILD_DIR)
#   TRITON_COMMON_DIR      a checkout of triton-inference-server/common, for the .proto files (same)
#   MODEL_REPOSITORY       the server's repository directory: the two model-control examples count the
#                          models in the repository index (HTTP expects 7, gRPC 8, as in Triton's own CI);
#                          when set, the script pads the repository with empty model directories to
#                          those counts for their runs and removes them after
#   EXAMPLE_TIMEOUT        seconds per example (default 120)
#   LOG_DIR                each example's full output (default BUILD_DIR/logs)
# Options: --build-only (assemble the client and stop), --only <substring> (run matching examples).
#
# Debian packages (bookworm; no PyPI): python3-grpcio python3-numpy python3-gevent
#   python3-geventhttpclient python3-rapidjson python3-protobuf python3-packaging python3-urllib3
#   python3-aiohttp python3-pil python3-pkg-resources protobuf-compiler protobuf-compiler-grpc
set -uo pipefail

HTTP_URL=${HTTP_URL:-localhost:8000}
GRPC_URL=${GRPC_URL:-localhost:8001}
BUILD_DIR=${BUILD_DIR:-/tmp/tritonclient-build}
EXAMPLE_TIMEOUT=${EXAMPLE_TIMEOUT:-120}
LOG_DIR=${LOG_DIR:-$BUILD_DIR/logs}
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD_ONLY=0
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --build-only) BUILD_ONLY=1 ;;
    --only) ONLY="$2"; shift ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
  shift
done

die() { echo "run-triton-examples: $*" >&2; exit 1; }

check_dependencies() {
  local missing=()
  for module in grpc numpy gevent geventhttpclient rapidjson google.protobuf packaging urllib3 aiohttp PIL pkg_resources; do
    "$PYTHON" -c "import $module" 2>/dev/null || missing+=("$module")
  done
  command -v protoc >/dev/null || missing+=(protoc)
  command -v grpc_python_plugin >/dev/null || missing+=(grpc_python_plugin)
  if [ ${#missing[@]} -gt 0 ]; then
    die "missing: ${missing[*]}. Install with:
  apt-get update && apt-get install -y --no-install-recommends python3-grpcio python3-numpy python3-gevent \\
    python3-geventhttpclient python3-rapidjson python3-protobuf python3-packaging python3-urllib3 \\
    python3-aiohttp python3-pil python3-pkg-resources protobuf-compiler protobuf-compiler-grpc"
  fi
}

# The tritonclient package as its wheel lays it out: the library's Python sources, plus the gRPC
# stubs generated from common's .proto files, renamed and with their imports fixed the way the
# client's build_wheel.py does (grpc_service_pb2 -> tritonclient.grpc.service_pb2).
build_client() {
  mkdir -p "$BUILD_DIR"
  if [ -z "${TRITON_CLIENT_DIR:-}" ]; then
    TRITON_CLIENT_DIR=$BUILD_DIR/client
    [ -d "$TRITON_CLIENT_DIR/.git" ] || git clone --depth 1 https://github.com/triton-inference-server/client "$TRITON_CLIENT_DIR" || die "cannot clone the client"
  fi
  if [ -z "${TRITON_COMMON_DIR:-}" ]; then
    TRITON_COMMON_DIR=$BUILD_DIR/common
    [ -d "$TRITON_COMMON_DIR/.git" ] || git clone --depth 1 https://github.com/triton-inference-server/common "$TRITON_COMMON_DIR" || die "cannot clone common"
  fi
  local library=$TRITON_CLIENT_DIR/src/python/library
  local protos=$TRITON_COMMON_DIR/protobuf
  [ -d "$library/tritonclient" ] || die "no $library/tritonclient"
  [ -f "$protos/grpc_service.proto" ] || die "no $protos/grpc_service.proto"

  local site=$BUILD_DIR/site generated=$BUILD_DIR/generated
  rm -rf "$site" "$generated"
  mkdir -p "$site" "$generated"
  cp -r "$library/tritonclient" "$site/"
  protoc -I "$protos" --python_out="$generated" --grpc_python_out="$generated" \
    --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
    grpc_service.proto model_config.proto health.proto || die "protoc failed"
  local grpc_dir=$site/tritonclient/grpc
  cp "$generated/model_config_pb2.py" "$grpc_dir/model_config_pb2.py"
  sed -E 's/^import ([^ ]*)_pb2 as ([^ ]*)$/from tritonclient.grpc import \1_pb2 as \2/' \
    "$generated/grpc_service_pb2.py" > "$grpc_dir/service_pb2.py"
  sed -E 's/^import grpc_([^ ]*)_pb2 as ([^ ]*)$/from tritonclient.grpc import \1_pb2 as \2/' \
    "$generated/grpc_service_pb2_grpc.py" > "$grpc_dir/service_pb2_grpc.py"
  # image_client.py and ensemble_image_client.py read HTTP metadata through attrdict (PyPI only, not
  # in Debian, and unmaintained): a small module of our own with the same behaviour stands in.
  mkdir -p "$site/attrdict"
  cat > "$site/attrdict/__init__.py" <<'PY'
"""Stand-in for the PyPI package attrdict: a dict whose keys are also attributes, recursively."""


class AttrDict(dict):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for key, value in self.items():
            super().__setitem__(key, AttrDict._wrap(value))

    @staticmethod
    def _wrap(value):
        if isinstance(value, dict) and not isinstance(value, AttrDict):
            return AttrDict(value)
        if isinstance(value, list):
            return tuple(AttrDict._wrap(item) for item in value)
        return value

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = AttrDict._wrap(value)
PY
  PYTHONPATH=$site "$PYTHON" -c 'import tritonclient.grpc, tritonclient.http, tritonclient.grpc.aio, tritonclient.http.aio' \
    || die "the assembled tritonclient does not import"
  EXAMPLES=$TRITON_CLIENT_DIR/src/python/examples
  echo "tritonclient assembled in $site (client $(git -C "$TRITON_CLIENT_DIR" rev-parse --short HEAD 2>/dev/null || echo '?'))"
}

# An image for the image clients (Triton's CI uses qa/images/vulture.jpeg, not in the client repository).
make_image() {
  IMAGE=$BUILD_DIR/example-image.jpg
  "$PYTHON" -c "
from PIL import Image
image = Image.new('RGB', (320, 240))
image.putdata([((x * 3) % 256, (y * 5) % 256, (x + y) % 256) for y in range(240) for x in range(320)])
image.save('$IMAGE')"
}

PADDING=()
pad_repository_to() {
  local want=$1
  [ -n "${MODEL_REPOSITORY:-}" ] || return 0
  local have
  have=$(find "$MODEL_REPOSITORY" -mindepth 1 -maxdepth 1 -type d ! -name '.*' | wc -l)
  while [ "$have" -lt "$want" ]; do
    local dir=$MODEL_REPOSITORY/zz_padding_$have
    mkdir "$dir" && PADDING+=("$dir")
    have=$((have + 1))
  done
}
remove_padding() {
  for dir in "${PADDING[@]}"; do rmdir "$dir" 2>/dev/null; done
  PADDING=()
}
trap remove_padding EXIT

PASSED=0
FAILED=0
RESULTS=()
run_example() {
  local name=$1; shift
  local script=$1; shift
  if [ -n "$ONLY" ] && [[ "$name" != *"$ONLY"* ]]; then return; fi
  local log=$LOG_DIR/$name.log
  (cd "$EXAMPLES" && PYTHONPATH=$BUILD_DIR/site timeout "$EXAMPLE_TIMEOUT" "$PYTHON" "$script" "$@") >"$log" 2>&1
  local rc=$?
  local last
  # The cause: a gRPC error's details if there is one, else the last line that is not noise (blank,
  # a bare ">" closing a gRPC error, aiohttp's unclosed-connector warnings printed at exit).
  last=$(grep -m1 -o 'details = ".*"' "$log" || grep -v -E '^\s*(>|\^+)?\s*$|^(Unclosed connector|connections: |connector: )' "$log" | tail -n 1)
  last=$(printf '%s' "$last" | cut -c1-220)
  if [ $rc -eq 0 ]; then
    PASSED=$((PASSED + 1)); RESULTS+=("PASS  $name")
    printf 'PASS  %-44s\n' "$name"
  else
    FAILED=$((FAILED + 1)); RESULTS+=("FAIL  $name (exit $rc): $last")
    printf 'FAIL  %-44s exit %-3s %s\n' "$name" "$rc" "$last"
  fi
}

check_dependencies
build_client
[ $BUILD_ONLY -eq 1 ] && exit 0
mkdir -p "$LOG_DIR"
make_image
curl -fsS "http://$HTTP_URL/v2/health/live" >/dev/null 2>&1 || die "no server live at http://$HTTP_URL"

echo "running the examples of $EXAMPLES against http://$HTTP_URL and grpc://$GRPC_URL; logs in $LOG_DIR"
# HTTP
run_example simple_http_health_metadata        simple_http_health_metadata.py -u "$HTTP_URL"
run_example simple_http_infer_client           simple_http_infer_client.py -u "$HTTP_URL"
run_example simple_http_infer_client_gzip      simple_http_infer_client.py -u "$HTTP_URL" --request-compression-algorithm gzip --response-compression-algorithm gzip
run_example simple_http_infer_client_deflate   simple_http_infer_client.py -u "$HTTP_URL" --request-compression-algorithm deflate --response-compression-algorithm deflate
run_example simple_http_async_infer_client     simple_http_async_infer_client.py -u "$HTTP_URL"
run_example simple_http_aio_infer_client       simple_http_aio_infer_client.py -u "$HTTP_URL"
run_example simple_http_string_infer_client    simple_http_string_infer_client.py -u "$HTTP_URL"
run_example simple_http_shm_client             simple_http_shm_client.py -u "$HTTP_URL"
run_example simple_http_shm_string_client      simple_http_shm_string_client.py -u "$HTTP_URL"
run_example simple_http_cudashm_client         simple_http_cudashm_client.py -u "$HTTP_URL"
run_example simple_http_sequence_sync_infer_client simple_http_sequence_sync_infer_client.py -u "$HTTP_URL"
run_example reuse_infer_objects_client_http    reuse_infer_objects_client.py -u "$HTTP_URL" -i http
run_example image_client_http                  image_client.py -u "$HTTP_URL" -m densenet_onnx -c 3 -s INCEPTION "$IMAGE"
run_example image_client_http_async            image_client.py -u "$HTTP_URL" -m densenet_onnx -c 3 -s INCEPTION -a "$IMAGE"
run_example ensemble_image_client_http         ensemble_image_client.py -u "$HTTP_URL" -c 1 "$IMAGE"
run_example memory_growth_test_http            memory_growth_test.py -i http -r 20
# gRPC
run_example simple_grpc_health_metadata        simple_grpc_health_metadata.py -u "$GRPC_URL"
run_example simple_grpc_infer_client           simple_grpc_infer_client.py -u "$GRPC_URL"
run_example simple_grpc_infer_client_gzip      simple_grpc_infer_client.py -u "$GRPC_URL" -C gzip
run_example simple_grpc_async_infer_client     simple_grpc_async_infer_client.py -u "$GRPC_URL"
run_example simple_grpc_aio_infer_client       simple_grpc_aio_infer_client.py -u "$GRPC_URL"
run_example simple_grpc_custom_args_client     simple_grpc_custom_args_client.py -u "$GRPC_URL"
run_example simple_grpc_keepalive_client       simple_grpc_keepalive_client.py -u "$GRPC_URL"
run_example simple_grpc_string_infer_client    simple_grpc_string_infer_client.py -u "$GRPC_URL"
run_example grpc_explicit_int_content_client   grpc_explicit_int_content_client.py -u "$GRPC_URL"
run_example grpc_explicit_int8_content_client  grpc_explicit_int8_content_client.py -u "$GRPC_URL"
run_example grpc_explicit_byte_content_client  grpc_explicit_byte_content_client.py -u "$GRPC_URL"
run_example grpc_client                        grpc_client.py -u "$GRPC_URL"
run_example simple_grpc_shm_client             simple_grpc_shm_client.py -u "$GRPC_URL"
run_example simple_grpc_shm_string_client      simple_grpc_shm_string_client.py -u "$GRPC_URL"
run_example simple_grpc_cudashm_client         simple_grpc_cudashm_client.py -u "$GRPC_URL"
run_example simple_grpc_sequence_sync_infer_client simple_grpc_sequence_sync_infer_client.py -u "$GRPC_URL"
run_example simple_grpc_sequence_stream_infer_client simple_grpc_sequence_stream_infer_client.py -u "$GRPC_URL"
run_example simple_grpc_aio_sequence_stream_infer_client simple_grpc_aio_sequence_stream_infer_client.py -u "$GRPC_URL"
run_example simple_grpc_custom_repeat          simple_grpc_custom_repeat.py -u "$GRPC_URL"
run_example reuse_infer_objects_client_grpc    reuse_infer_objects_client.py -u "$GRPC_URL" -i grpc
run_example grpc_image_client                  grpc_image_client.py -u "$GRPC_URL" -m densenet_onnx -c 3 -s INCEPTION "$IMAGE"
run_example image_client_grpc                  image_client.py -u "$GRPC_URL" -i grpc -m densenet_onnx -c 3 -s INCEPTION "$IMAGE"
run_example image_client_grpc_streaming        image_client.py -u "$GRPC_URL" -i grpc --streaming -m densenet_onnx -c 3 -s INCEPTION "$IMAGE"
run_example ensemble_image_client_grpc         ensemble_image_client.py -u "$GRPC_URL" -i grpc -c 1 "$IMAGE"
run_example memory_growth_test_grpc            memory_growth_test.py -i grpc -r 20
# Last: the model-control examples unload `simple`.
pad_repository_to 7
run_example simple_http_model_control          simple_http_model_control.py -u "$HTTP_URL"
remove_padding
pad_repository_to 8
run_example simple_grpc_model_control          simple_grpc_model_control.py -u "$GRPC_URL"
remove_padding

echo
echo "$PASSED passed, $FAILED failed"
[ $FAILED -eq 0 ]
