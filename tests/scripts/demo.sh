#!/usr/bin/env bash
# The whole story on the committed real sample: ingest → full export → (upstream moves
# on) → delta export → verify → import on a second store → same state root.
set -euo pipefail
cd "$(dirname "$0")/../.."
SM=${STELLAMIRROR_BIN:-target/release/stellamirror}
DATA=tests/data
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stellamirror-demo.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The story uses fixed 2026-08 creation dates (reproducible bundles); importers judge
# expiry (30 days for a full bundle, 7 for a delta) by this clock instead of today's.
export STELLAMIRROR_NOW=${STELLAMIRROR_NOW:-2026-08-15T12:00:00Z}

step "keys: an Ed25519 signing key for the producer"
$SM keygen --out "$WORK/producer"

step "ingest (producer side): Go advisories, Rancher VEX, a CycloneDX SBOM"
$SM ingest --store "$WORK/producer-store" --tenant acme --source golang-vulndb --complete "$DATA/osv/go-old.jsonl"
$SM ingest --store "$WORK/producer-store" --tenant acme --source rancher-vexhub --complete "$DATA/vex/rancher-old"
$SM ingest --store "$WORK/producer-store" --tenant acme --source sboms "$DATA/sboms"
$SM status --store "$WORK/producer-store" --tenant acme

step "export full"
$SM export full --store "$WORK/producer-store" --tenant acme --out "$WORK/bundles" \
  --run-id acme-full-1 --created-at 2026-08-14T00:00:00Z --sign-key "$WORK/producer.pem"

step "upstream moves on: newer snapshots (added, changed and removed records)"
$SM ingest --store "$WORK/producer-store" --tenant acme --source golang-vulndb --complete "$DATA/osv/go-new.jsonl"
$SM ingest --store "$WORK/producer-store" --tenant acme --source rancher-vexhub --complete "$DATA/vex/rancher-new"

step "export delta against the full"
$SM export delta --store "$WORK/producer-store" --tenant acme --out "$WORK/bundles" --base acme-full-1 \
  --run-id acme-delta-1 --created-at 2026-08-15T00:00:00Z --sign-key "$WORK/producer.pem"
zstd -dc "$WORK/bundles/acme-delta-1-delta.tar.zst" | tar -xO delta/manifest.diff.json

step "verify the chain (signatures, digests, records, Merkle roots); openssl checks the signature too"
$SM verify "$WORK/bundles/acme-full-1-full.tar.zst" "$WORK/bundles/acme-delta-1-delta.tar.zst" --trust "$WORK/producer.pub.pem"
mkdir -p "$WORK/x" && zstd -dc "$WORK/bundles/acme-full-1-full.tar.zst" | tar -x -C "$WORK/x"
openssl pkeyutl -verify -pubin -inkey "$WORK/producer.pub.pem" -rawin \
  -in "$WORK/x/mirror/manifest.yaml" -sigfile "$WORK/x/mirror/signatures/manifest.sig"

step "import on the far side, in order"
$SM import "$WORK/bundles/acme-full-1-full.tar.zst" --store "$WORK/mirror-store" --trust "$WORK/producer.pub.pem"
$SM import "$WORK/bundles/acme-delta-1-delta.tar.zst" --store "$WORK/mirror-store" --trust "$WORK/producer.pub.pem" \
  --publish "$WORK/published"

step "same state root on both sides"
P=$($SM status --store "$WORK/producer-store" --tenant acme --json | jq -r .stateRoot)
M=$($SM status --store "$WORK/mirror-store" --tenant acme --json | jq -r .stateRoot)
echo "producer: $P"
echo "mirror:   $M"
[ "$P" = "$M" ] || { echo "state roots differ" >&2; exit 1; }

step "disaster recovery: rebuild a third store from the folder of bundles"
$SM rebuild --bundles "$WORK/bundles" --store "$WORK/rebuilt-store" --trust "$WORK/producer.pub.pem"
R=$($SM status --store "$WORK/rebuilt-store" --tenant acme --json | jq -r .stateRoot)
[ "$R" = "$P" ] || { echo "rebuilt state root differs" >&2; exit 1; }
echo "rebuilt:  $R"
printf '\n\033[1mdemo OK\033[0m: ingest → full → delta → verify → import → same state root (%s)\n' "$P"
