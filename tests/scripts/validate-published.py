#!/usr/bin/env python3
"""Validate a published mirror tree (DIR = <out>/<tenant>/current) against the official
schemas committed in tests/data/schemas (origins in tests/data/README.md):

* every <id>.json in osv/*/all.zip            -> OSV schema (ossf/osv-schema)
* every OpenVEX document in the VEX archive   -> OpenVEX schema (openvex/spec)
* the archive's index.json and the manifest   -> aquasecurity/vex-repo-spec schemas
* .well-known/csaf/provider-metadata.json     -> CSAF 2.0 provider schema (its external
  $ref to the CSAF schema is resolved from the committed copy, never over the network)

Prints a JSON summary on stdout; exits 1 listing every failure. JSON Schema `format`
keywords are annotations here (not asserted), as jsonschema does by default.

One deviation of real upstream data is counted apart, not as a failure: a `not_affected`
statement carrying both `justification` and `impact_statement` (the Rancher VEX Hub writes
both), which the schema's `oneOf` forbids while the OpenVEX spec's text ("either a status
justification or an impact_statement") does not clearly do. Raw documents are published
as received, so the mirror cannot and does not change them.

Also apart: raw OpenVEX documents (published as received) that the schema rejects are listed
under `upstreamInvalid`, and index.json package ids that are purls but fall outside the
index schema's id pattern (which rejects digits in a namespace, `pkg:golang/k8s.io/…`, and
purls without a namespace such as the spec's own example `pkg:npm/lodash`) are counted
under `vexIndexIdOutsidePattern`. Documents the mirror writes itself (combined OpenVEX
documents, whose statements are copied verbatim and judged as upstream's; index.json
otherwise; the manifest; provider-metadata.json) and every OSV document must validate.
"""
import json
import pathlib
import sys
import zipfile

import jsonschema
from referencing import Registry, Resource

SCHEMAS = pathlib.Path(__file__).resolve().parent.parent / "data" / "schemas"


def load(name):
    return json.loads((SCHEMAS / name).read_text())


def validator(schema, registry=None):
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, registry=registry) if registry else cls(schema)


def main(root):
    root = pathlib.Path(root)
    failures, upstream = [], []
    counts = {"openvexJustificationAndImpact": 0, "vexIndexIdOutsidePattern": 0, "osv": 0, "openvex": 0, "vexIndex": 0, "vexManifest": 0, "providerMetadata": 0}
    osv = validator(load("osv_schema.json"))
    openvex = validator(load("openvex_json_schema.json"))

    def both_reasons(doc, e):
        path = list(e.absolute_path)
        if e.validator != "oneOf" or len(path) != 2 or path[0] != "statements":
            return False
        st = doc["statements"][path[1]]
        return st.get("status") == "not_affected" and "justification" in st and "impact_statement" in st

    def id_pattern(e):
        path = list(e.absolute_path)
        return e.validator == "pattern" and len(path) == 3 and path[2] == "id" and e.instance.startswith("pkg:")

    def check(v, doc, where, key):
        errs = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        sink = failures
        if key == "openvex":
            known = [e for e in errs if both_reasons(doc, e)]
            counts["openvexJustificationAndImpact"] += len(known)
            errs = [e for e in errs if not both_reasons(doc, e)]
            if not str(doc.get("@id", "")).startswith("urn:stellamirror:"):
                sink = upstream
            else:
                # A combined document's statements are copied verbatim from the raw ones.
                inner = [e for e in errs if len(e.absolute_path) >= 2 and e.absolute_path[0] == "statements"]
                for e in inner[:3]:
                    upstream.append(f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message[:200]}")
                errs = [e for e in errs if e not in inner]
        if key == "vexIndex":
            counts["vexIndexIdOutsidePattern"] += len([e for e in errs if id_pattern(e)])
            errs = [e for e in errs if not id_pattern(e)]
        for e in errs[:3]:
            sink.append(f"{where}: {'/'.join(map(str, e.absolute_path))}: {e.message[:200]}")
        counts[key] += 1

    for z in sorted(root.glob("osv/*/all.zip")):
        with zipfile.ZipFile(z) as zf:
            for name in zf.namelist():
                check(osv, json.loads(zf.read(name)), f"{z.relative_to(root)}:{name}", "osv")
    archive = root / "vex" / "vex-repository.zip"
    if archive.exists():
        with zipfile.ZipFile(archive) as zf:
            index = json.loads(zf.read("index.json"))
            check(validator(load("vex-repo-index.schema.json")), index, "index.json", "vexIndex")
            for p in index["packages"]:
                check(openvex, json.loads(zf.read(p["location"])), p["location"], "openvex")
        manifest = json.loads((root / ".well-known" / "vex-repository.json").read_text())
        check(validator(load("vex-repository.schema.json")), manifest, "vex-repository.json", "vexManifest")
    csaf = load("csaf_json_schema.json")
    registry = Registry().with_resource(csaf["$id"], Resource.from_contents(csaf))
    provider = root / ".well-known" / "csaf" / "provider-metadata.json"
    if provider.exists():
        check(validator(load("provider_json_schema.json"), registry), json.loads(provider.read_text()),
              "provider-metadata.json", "providerMetadata")
    print(json.dumps({"counts": counts, "failures": failures, "upstreamInvalid": upstream}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
