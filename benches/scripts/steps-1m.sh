#!/usr/bin/env bash
# The step-by-step 1M re-measurement quoted in docs/benchmarks.md ("1M, store format 2, step by step"):
# ingest, full export (plain, AES-GCM, age), churned ingest, delta export, each under
# GNU time, on the data `smscale --n 1000000` generated (kept under WORK/data).
# Usage: benches/scripts/steps-1m.sh [WORK (default target/smscale)] [OUT (default /tmp/sm-steps)]
set -euo pipefail
cd "$(dirname "$0")/../.."
WORK=${1:-target/smscale}
OUT=${2:-/tmp/sm-steps}
D=$WORK/data/n1000000-s1
[ -d "$D/gen0" ] || { echo "no generated data in $D: run make bench-scale N=1000000 first" >&2; exit 1; }
G1=$(ls -d "$D"/gen1-* | head -1)
B=$OUT/stellamirror
rm -rf "$OUT" && mkdir -p "$OUT"
cp "${CARGO_TARGET_DIR:-target}/release/stellamirror" "$B"
"$B" keygen --out "$OUT/k" >/dev/null
"$B" keygen --age --out "$OUT/age" >/dev/null
R=$(cat "$OUT/age.pub")
S=$OUT/store; O=$OUT/bundles; K=$OUT/k.pem
t() { /usr/bin/time -f "$1 wall=%e cpu=%U+%S rss_kb=%M" "${@:2}" >/dev/null; }
t ingest0-advisories "$B" -q ingest --store "$S" --tenant bench --source osv --complete "$D/gen0/advisories.jsonl"
t ingest0-vex "$B" -q ingest --store "$S" --tenant bench --source openvex --complete "$D/gen0/vex"
t export-full "$B" -q export full --store "$S" --tenant bench --out "$O" --run-id full-1 --created-at 2026-01-01T00:00:00Z --sign-key "$K"
t export-full-aes-gcm "$B" -q export full --store "$S" --tenant bench --out "$O" --run-id full-enc --created-at 2026-01-01T00:00:00Z --sign-key "$K" --encrypt aes-gcm --recipient "$R"
t export-full-age "$B" -q export full --store "$S" --tenant bench --out "$O" --run-id full-age --created-at 2026-01-01T00:00:00Z --sign-key "$K" --encrypt age --recipient "$R"
t ingest1-advisories "$B" -q ingest --store "$S" --tenant bench --source osv --complete "$G1/advisories.jsonl"
t ingest1-vex "$B" -q ingest --store "$S" --tenant bench --source openvex --complete "$G1/vex"
# Right after the ingest, as operators run it (ingest settles its compaction first).
t export-delta "$B" -q export delta --store "$S" --tenant bench --out "$O" --base full-1 --run-id delta-1 --created-at 2026-01-01T01:00:00Z --sign-key "$K"
