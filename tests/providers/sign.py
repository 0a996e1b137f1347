"""Signs sample webhook requests the way each provider does, with the providers' own
libraries where they publish one (stripe, standardwebhooks, slack_sdk); for Shopify,
Segment and WorkOS, which publish no signing code, with Python's hmac module following
their documentation (WorkOS's signatures are then checked with the `workos` package's
own verifier); for Standard Webhooks' asymmetric `v1a` signatures, which its
libraries do not produce, with the `cryptography` package's ed25519 (the secret is
`whsk_` + base64 of the 32-byte seed). Inlet's code is not used, so the tests check Inlet against the
providers, not against itself.

Reads a JSON array of cases on stdin: {scheme, secret, body, timestamp (unix s), id}.
Writes a JSON array of header maps, one per case.
"""
import base64
import datetime
import hashlib
import hmac
import json
import sys

import standardwebhooks
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
import stripe
from slack_sdk.signature import SignatureVerifier
from workos.webhooks._verification import verify_header as workos_verify_header


def sign(case):
    scheme, secret, body, ts = case["scheme"], case["secret"], case["body"], int(case["timestamp"])
    if scheme == "stripe":
        return {"stripe-signature": stripe.WebhookSignature.generate_signature_header(body, secret, ts)}
    if scheme in ("standard-webhooks", "svix"):
        when = datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc)
        signature = standardwebhooks.Webhook(secret).sign(case["id"], when, body)
        prefix = "webhook" if scheme == "standard-webhooks" else "svix"
        return {f"{prefix}-id": case["id"], f"{prefix}-timestamp": str(ts), f"{prefix}-signature": signature}
    if scheme == "standard-webhooks-v1a":
        seed = base64.b64decode(secret.removeprefix("whsk_"))
        key = Ed25519PrivateKey.from_private_bytes(seed)
        signature = key.sign(f"{case['id']}.{ts}.{body}".encode())
        return {"webhook-id": case["id"], "webhook-timestamp": str(ts),
                "webhook-signature": "v1a," + base64.b64encode(signature).decode()}
    if scheme == "slack":
        signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
        return {"x-slack-signature": signature, "x-slack-request-timestamp": str(ts)}
    if scheme == "shopify":
        digest = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
        return {"x-shopify-hmac-sha256": base64.b64encode(digest).decode()}
    if scheme == "segment":
        return {"x-signature": hmac.new(secret.encode(), body.encode(), hashlib.sha1).hexdigest()}
    if scheme == "workos":
        ms = ts * 1000
        digest = hmac.new(secret.encode(), f"{ms}.{body}".encode(), hashlib.sha256).hexdigest()
        header = f"t={ms}, v1={digest}"
        # WorkOS's own library accepts it (its verifier, with the time check widened:
        # the stale and future cases are signed that way on purpose).
        workos_verify_header(event_body=body.encode(), event_signature=header, secret=secret,
                             tolerance=10**9)
        return {"workos-signature": header}
    raise SystemExit(f"sign.py: no signer for scheme {scheme!r}")


json.dump([sign(case) for case in json.load(sys.stdin)], sys.stdout)
