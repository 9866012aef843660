"""A decision that raises is allowed (fail-open), counted, and logged without the object it judged."""

from __future__ import annotations

import asyncio
import json
import logging

from certpolicy import metrics
from certpolicy.webhook.server import WebhookServer

KEY = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"


class _Request:
    match_info = {"policy": "p"}

    async def read(self) -> bytes:
        return json.dumps({"kind": "AdmissionReview", "request": {
            "uid": "u1", "operation": "UPDATE", "namespace": "ns", "name": "s", "kind": {"kind": "Secret"},
            "object": {"metadata": {"name": "s"}, "data": {"tls.key": KEY}}}}).encode()


def test_a_failed_decision_is_allowed_counted_and_logs_no_key(caplog):
    def decide(_what, _policy, request):
        raise ValueError(f"cannot read {request.object['data']['tls.key']}")

    server = WebhookServer("127.0.0.1", 0, decide)
    before = metrics.WEBHOOK_DECISION_ERRORS._value.get()
    with caplog.at_level(logging.DEBUG, logger="certpolicy.webhook.server"):
        answer = asyncio.run(server._handle("secret")(_Request()))
    assert json.loads(answer.body)["response"]["allowed"] is True
    assert metrics.WEBHOOK_DECISION_ERRORS._value.get() == before + 1
    assert "admission decision failed" in caplog.text
    assert "MIIEvQ" not in caplog.text and "PRIVATE KEY" not in caplog.text, caplog.text  # at any level
