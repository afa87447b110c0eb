#!/usr/bin/env python3
"""Verifies deliveries signed by this project with the official Standard
Webhooks Python library (`pip install standardwebhooks`).

Reads, on standard input, the JSON array `cargo run --example
signed_delivery` prints: for each delivery its headers, its body (UTF-8
text, verified as its bytes) and the secrets it must and must not verify with. Each must-verify secret
verifies; each must-not secret fails; an altered body fails under every
secret. Exits 1 on the first violation.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def fails(secret, body, headers):
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return True
    return False


def main():
    cases = json.load(sys.stdin)
    if len(cases) < 3:
        sys.exit(f"expected three deliveries, got {len(cases)}")
    for case in cases:
        body = case["body"].encode("utf-8")
        headers = case["headers"]
        signatures = headers.get("Webhook-Signature", "").split(" ")
        if len(signatures) != len(case["verify"]):
            sys.exit(f"{case['case']}: {len(signatures)} signatures for {len(case['verify'])} secrets")
        for secret in case["verify"]:
            Webhook(secret).verify(body, headers)
            altered = body[:-1] + b" " + body[-1:]
            if not fails(secret, altered, headers):
                sys.exit(f"{case['case']}: an altered body verified")
        for secret in case["reject"]:
            if not fails(secret, body, headers):
                sys.exit(f"{case['case']}: a secret that must not verify did")
        print(f"standard webhooks: {case['case']}: {len(case['verify'])} secret(s) verify, "
              f"{len(case['reject'])} refused, altered body refused")


if __name__ == "__main__":
    main()
