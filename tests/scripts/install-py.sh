#!/usr/bin/env bash
# Installs the Python packages the publish tests validate with (the `jsonschema` validator and
# its `referencing` registry), from PyPI, when missing. Idempotent and quick when present.
set -euo pipefail

python_missing() {
  python3 -c 'import jsonschema, referencing' >/dev/null 2>&1 || echo jsonschema
}

main() {
  command -v python3 >/dev/null 2>&1 || bash "$(dirname "$0")/install-deps.sh" python3 python3-pip
  local need
  need=$(python_missing)
  [ -z "$need" ] && return 0
  echo "installing (pip): $need" >&2
  python3 -m pip install --quiet "$need" 2>/dev/null ||
    python3 -m pip install --quiet --break-system-packages "$need"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  main "$@"
fi
