#!/usr/bin/env bash
# Python packages for the third-party attestation checks (tests/attest.rs): a virtual
# environment of their own, so the system Python is left alone. Idempotent; prints the
# interpreter to use on its last line. Kept apart from install-deps.sh on purpose.
set -euo pipefail
VENV=${STELLAMIRROR_PYENV:-${CARGO_TARGET_DIR:-$HOME/.cache/stellamirror}/pyenv}
mkdir -p "$(dirname "$VENV")"
# Tests run in parallel: one creates the environment, the others wait for it.
exec 9>"$VENV.lock"
flock 9
if ! "$VENV/bin/python" -c "import securesystemslib.dsse, cryptography" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "securesystemslib[crypto]==1.6.0" >&2
fi
echo "$VENV/bin/python"
