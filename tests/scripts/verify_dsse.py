"""Verify a stellamirror DSSE envelope with securesystemslib (a third-party DSSE
implementation), not with stellamirror's code.

usage: verify_dsse.py ENVELOPE PUBLIC_KEY.pem
The key id is computed here (sha256 of the SPKI DER, as docs/bundle-format.md says).
Prints {"keyid", "payloadType", "payload"} (payload as text) and exits 0, or exits 1
with the verifier's error.
"""
import hashlib
import json
import sys

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main() -> int:
    envelope_path, pem_path = sys.argv[1:3]
    with open(pem_path, "rb") as f:
        public = load_pem_public_key(f.read())
    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    keyid = "sha256:" + hashlib.sha256(der).hexdigest()
    key = SSlibKey.from_crypto(public, keyid=keyid)
    with open(envelope_path, encoding="utf-8") as f:
        envelope = Envelope.from_dict(json.load(f))
    try:
        envelope.verify([key], 1)
    except Exception as e:  # VerificationError and friends: report, exit 1
        print(f"verification failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"keyid": keyid, "payloadType": envelope.payload_type, "payload": envelope.payload.decode()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
