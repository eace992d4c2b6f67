#!/usr/bin/env bash
# Start a model server only after the model passed the policy.
#
#   ./run.sh MODEL_DIR                      # verify, then serve.py (which checks again as it loads)
#   ./run.sh MODEL_DIR vllm serve MODEL_DIR # verify, then any server command
#
# POLICY=path/to/policy.yaml overrides the policy beside this script; PYTHON
# picks the interpreter for serve.py. No server when the model is refused:
# exit code 1 (2 for a usage or input error, such as a missing signature).
#
# A server given on the command line re-opens the files after the check: keep
# the model on storage nobody else can write (a read-only mount, an image
# layer), or load through modelsign as serve.py does, which uses exactly the
# bytes it verified.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
policy="${POLICY:-$here/policy.yaml}"
model="${1:?usage: run.sh MODEL_DIR [SERVER COMMAND...]}"
shift

status=0
modelsign verify "$model" --policy "$policy" || status=$?
if [ "$status" -ne 0 ]; then
  echo "run.sh: $model was not verified against $policy: not starting the server" >&2
  exit "$status"   # 1 refused, 2 usage or input error
fi

if [ "$#" -eq 0 ]; then
  set -- "${PYTHON:-python3}" "$here/serve.py" "$model" --policy "$policy"
fi
exec "$@"
