"""Error bodies that travel on in exceptions carry the Status message only, never Secret data."""

from __future__ import annotations

import base64
import json

import certgen
from certpolicy.kube.rawapi import MAX_ERROR_MESSAGE, error_status


def test_status_message_is_kept():
    body = json.dumps({"kind": "Status", "code": 409, "reason": "Conflict",
                       "message": 'Operation cannot be fulfilled on secrets "x": the object has been modified'})
    out = json.loads(error_status(body.encode()))
    assert out == {"kind": "Status", "code": 409, "reason": "Conflict",
                   "message": 'Operation cannot be fulfilled on secrets "x": the object has been modified'}


def test_key_material_echoed_by_a_webhook_is_cut_out():
    pem = certgen.key_pem(certgen.new_key()).decode()
    b64 = base64.b64encode(pem.encode()).decode()
    body = json.dumps({"kind": "Status", "code": 400, "reason": "BadRequest",
                       "message": f"admission webhook denied: data.tls.key={b64} raw={pem} end"})
    message = json.loads(error_status(body.encode()))["message"]
    assert "PRIVATE KEY" not in message and b64[:40] not in message
    assert message.startswith("admission webhook denied: data.tls.") and message.endswith("end")
    assert message.count("<redacted>") == 2


def test_non_status_bodies_and_long_messages():
    assert "not shown" in json.loads(error_status(b'{"apiVersion": "v1", "kind": "Secret", "data": {}}'))["message"]
    assert "not shown" in json.loads(error_status(b"\xff not json"))["message"]
    long = json.dumps({"kind": "Status", "message": "word " * 1000}).encode()
    assert len(json.loads(error_status(long))["message"]) == MAX_ERROR_MESSAGE
