#!/usr/bin/env bash
# Build Beam's Prism runner (Go) at the version of the installed apache-beam, cached under .cache/.
# Idempotent: a second run finds the binary and only prints its path. Prints the binary path on stdout.
# Test infrastructure only: the product never needs Go (users pass --prism_location or let Beam fetch Prism).
# Needs the Go release that Beam's go.mod asks for (go 1.26 for Beam 2.77); an older go stops with its own message.
# Exit codes: 0 built or found (path on stdout), 2 cannot build here (no apache-beam, no Go), 1 the build failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
[ -x "$python" ] || python=python3
version="${BEAM_VERSION:-$("$python" -c 'import apache_beam; print(apache_beam.__version__)' 2>/dev/null || true)}"
if [ -z "$version" ]; then
  echo "prism.sh: apache-beam is not installed (run make install first) and BEAM_VERSION is not set" >&2
  exit 2
fi
cache="$root/.cache/go"
bin_dir="$root/.cache/prism/v$version"
binary="$bin_dir/prism"
if [ -x "$binary" ]; then
  echo "$binary"
  exit 0
fi
go_bin="$(command -v go || true)"
[ -n "$go_bin" ] || { [ -x /usr/local/go/bin/go ] && go_bin=/usr/local/go/bin/go; }
if [ -z "$go_bin" ]; then
  echo "prism.sh: no Go toolchain found (need go >= 1.22 on PATH or in /usr/local/go/bin)" >&2
  exit 2
fi
mkdir -p "$bin_dir" "$cache"
echo "prism.sh: building prism v$version with $("$go_bin" version) (first run downloads modules; later runs reuse .cache/)" >&2
env GOFLAGS=-mod=mod GOPATH="$cache/path" GOMODCACHE="$cache/mod" GOCACHE="$cache/build" GOBIN="$bin_dir" \
  GOTOOLCHAIN=local CGO_ENABLED=0 \
  "$go_bin" install "github.com/apache/beam/sdks/v2/go/cmd/prism@v$version" >&2
[ -x "$binary" ] || { echo "prism.sh: go install finished but $binary is missing" >&2; exit 1; }
echo "$binary"
