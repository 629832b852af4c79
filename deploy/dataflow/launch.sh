#!/usr/bin/env bash
# Launch newsmon's streaming pipeline on Dataflow with the options in dataflow.flags.
#
#   export GCP_PROJECT=... GCP_REGION=... GCS_BUCKET=... WORKER_IMAGE=... \
#          DATAFLOW_SERVICE_ACCOUNT=... DATAFLOW_SUBNETWORK=...
#   deploy/dataflow/launch.sh                 # new job
#   deploy/dataflow/launch.sh --update        # replace the running job in place
#
# Run it where `newsmon` is the same build as the worker image (best: inside that image,
# see deploy/README.md), so the launcher's Beam and Python versions equal the workers'.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
flags_file="${NEWSMON_DATAFLOW_FLAGS:-$here/dataflow.flags}"

# Expand ${VAR} in each non-comment line; fail on the first unset variable.
expanded="$(python3 - "$flags_file" <<'PY'
import os, re, sys

def expand(match: re.Match) -> str:
    name = match.group(1)
    if not os.environ.get(name):
        sys.exit(f"launch.sh: {name} is not set (needed by {sys.argv[1]})")
    return os.environ[name]

with open(sys.argv[1], encoding="utf-8") as handle:
    for line in handle:
        line = line.strip()
        if line and not line.startswith("#"):
            print(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", expand, line))
PY
)"
mapfile -t flags <<< "$expanded"
if [ -z "$expanded" ]; then
  echo "launch.sh: no options read from $flags_file" >&2
  exit 2
fi
exec newsmon -v run "${flags[@]}" "$@"
