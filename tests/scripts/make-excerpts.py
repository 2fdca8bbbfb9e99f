#!/usr/bin/env python3
"""Rebuild the committed excerpts in tests/data from ../shared/data (the real corpora).

Deterministic: the same corpora give the same excerpts. Run from the repository root:
    python3 tests/scripts/make-excerpts.py ../shared/data
"""
import json, os, shutil, sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data"
dst = "tests/data"

def load(p):
    with open(p, encoding="utf-8") as f:
        return [l for l in f if l.strip()]

def by_id(lines):
    return {json.loads(l)["id"]: l for l in lines}

def write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(lines)

# Go: old = 2026-07-21, new = 2026-08-14. Keep every changed id, the first 20 added ids,
# 60 unchanged ids; drop 5 unchanged ids from the new excerpt to exercise removal.
old, new = by_id(load(f"{src}/history/go-2026-07-21.jsonl")), by_id(load(f"{src}/history/go-2026-08-14.jsonl"))
changed = sorted(i for i in old if i in new and json.loads(old[i]) != json.loads(new[i]))
added = sorted(i for i in new if i not in old)[:20]
unchanged = sorted(i for i in old if i in new and json.loads(old[i]) == json.loads(new[i]))[:60]
removed = unchanged[:5]
old_ids = sorted(changed + unchanged)
new_ids = sorted(changed + added + unchanged[5:])
write(f"{dst}/osv/go-old.jsonl", [old[i] for i in old_ids])
write(f"{dst}/osv/go-new.jsonl", [new[i] for i in new_ids])
# PyPA: 40 records of the newest snapshot.
write(f"{dst}/osv/pypa.jsonl", load(f"{src}/advisories/pypa.jsonl")[:40])
expected = {"osv/go-old.jsonl -> osv/go-new.jsonl": {
    "old_count": len(old_ids), "new_count": len(new_ids),
    "added": len(added), "changed": len(changed), "removed": len(removed),
    "removed_ids": removed}}

# Rancher VEX Hub: 2 unchanged, 2 changed (old version from history/), 1 added.
man = json.load(open(f"{src}/history/rancher-vexhub-2026-08-15/manifest.json"))
hub = f"{src}/vex/openvex/rancher-vexhub"
pick_unchanged = sorted(man["unchanged"])[:2]
pick_changed = sorted(man["changed"])[:2]
pick_added = sorted(man["added_since"])[:1]
for d in ("vex/rancher-old", "vex/rancher-new"):
    shutil.rmtree(f"{dst}/{d}", ignore_errors=True)
    os.makedirs(f"{dst}/{d}")
for f in pick_unchanged:
    shutil.copy(f"{hub}/{f}", f"{dst}/vex/rancher-old/{f}")
    shutil.copy(f"{hub}/{f}", f"{dst}/vex/rancher-new/{f}")
for f in pick_changed:
    shutil.copy(f"{src}/history/rancher-vexhub-2026-08-15/{f}", f"{dst}/vex/rancher-old/{f}")
    shutil.copy(f"{hub}/{f}", f"{dst}/vex/rancher-new/{f}")
for f in pick_added:
    shutil.copy(f"{hub}/{f}", f"{dst}/vex/rancher-new/{f}")
expected["vex/rancher-old -> vex/rancher-new"] = {"added": 1, "changed": 2, "removed": 0, "unchanged": 2}

# SBOMs: the smallest CycloneDX SBOM; CSAF and CycloneDX VEX examples for coverage.
os.makedirs(f"{dst}/sboms/cern-lhc-vdm-editor-e564943", exist_ok=True)
shutil.copy(f"{src}/sboms/cern-lhc-vdm-editor-e564943/sbom.json", f"{dst}/sboms/cern-lhc-vdm-editor-e564943/sbom.json")
os.makedirs(f"{dst}/csaf", exist_ok=True)
for f in ("bsi-2022-0001.json", "rhsa-2021_5217.json"):
    shutil.copy(f"{src}/csaf/oasis-csaf_2.0/{f}", f"{dst}/csaf/{f}")
shutil.copy(f"{src}/csaf/oasis-csaf_2.0/csaf_vex/2022-evd-uc-01-a-001.json", f"{dst}/csaf/2022-evd-uc-01-a-001.json")
os.makedirs(f"{dst}/cyclonedx-vex", exist_ok=True)
shutil.copy(f"{src}/vex/cyclonedx/bom-examples/CISA-Use-Cases__Case-1__vex-affected.json", f"{dst}/cyclonedx-vex/CISA-Use-Cases__Case-1__vex-affected.json")

with open(f"{dst}/expected.json", "w") as f:
    json.dump(expected, f, indent=1, sort_keys=True)
    f.write("\n")
print(json.dumps(expected, indent=1))
