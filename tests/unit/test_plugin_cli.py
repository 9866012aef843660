"""The plugin's conventions (issue #26 item 9) and what its reads keep (item 5), without a cluster.

Flags before or after the verb, ``-n``/``-A``, ``rotate plan POLICY`` and its deprecated alias,
``-o yaml``, ``version --client``, ``completion``; which requests a policy's selection makes (a
recording stand-in for the API: what is asked is the point here, the real API server's answers
are in tests/integration/test_plugin_reads.py), and that a listed Secret leaves no key behind.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

import pytest
import yaml

import certgen
from certpolicy.plugin import cli
from certpolicy.plugin.blast import TargetError, certificates_only, with_namespace
from certpolicy.plugin.output import dump
from certpolicy.plugin.plan import policy_argument
from certpolicy.plugin.scoped import for_policy

PLUGIN = [sys.executable, "-m", "certpolicy.plugin.cli"]


@pytest.mark.parametrize("argv", [
    ["--context", "ctx", "-n", "ns", "--kubeconfig", "kc", "-o", "json", "status"],
    ["status", "--context", "ctx", "-n", "ns", "--kubeconfig", "kc", "-o", "json"],
    ["--context", "ctx", "--kubeconfig", "kc", "status", "-n", "ns", "-o", "json"],
])
def test_global_flags_before_or_after_the_verb(argv):
    args = cli.parser().parse_args(argv)
    assert (args.context, args.namespace, args.kubeconfig, args.output) == ("ctx", "ns", "kc", "json")


def test_a_flag_before_the_verb_is_not_reset_by_the_verbs_parser():
    args = cli.parser().parse_args(["--operator-namespace", "ops", "-A", "leftovers"])
    assert args.operator_namespace == "ops" and args.all_namespaces and args.output == "table"


def test_namespace_and_all_namespaces_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["-n", "x", "-A", "status"])
    assert e.value.code == 3 and "exclude each other" in capsys.readouterr().err


def test_operator_namespace_flag_wins_over_the_environment(monkeypatch, capsys):
    monkeypatch.setenv("CERTPOLICY_NAMESPACE", "from-env")
    from certpolicy.environment import operator_namespace

    assert cli.main(["--operator-namespace", "from-flag", "version", "--client"]) == 0
    assert operator_namespace() == "from-flag"
    capsys.readouterr()


def test_rotate_plan_policy_and_the_deprecated_alias(capsys):
    def ns(words, plan=False):
        return argparse.Namespace(words=words, plan=plan)

    assert policy_argument(ns(["plan", "web"])) == "web" and capsys.readouterr().err == ""
    assert policy_argument(ns(["web"], plan=True)) == "web"
    assert "deprecated" in capsys.readouterr().err
    for bad in (ns(["web"]), ns(["web", "x"]), ns(["plan"])):
        with pytest.raises(TargetError, match="rotate plan POLICY"):
            policy_argument(bad)


def test_a_bundle_target_without_namespace_takes_the_given_one():
    assert with_namespace("configmap/ca:ca.crt", "ops") == "configmap/ops/ca:ca.crt"
    assert with_namespace("secret/app/ca", "ops") == "secret/app/ca"
    assert with_namespace("sha256:abcdef0123", "ops") == "sha256:abcdef0123"


def test_yaml_is_the_json_document():
    doc = {"b": [1, {"x": None}], "a": "é"}
    out_json, out_yaml = io.StringIO(), io.StringIO()
    dump(doc, out_json)
    dump(doc, out_yaml, "yaml")
    assert yaml.safe_load(out_yaml.getvalue()) == json.loads(out_json.getvalue()) == doc
    assert out_yaml.getvalue().startswith("b:")  # the document's order, not sorted


def test_version_client_reads_nothing():
    proc = subprocess.run([*PLUGIN, "--kubeconfig", "/nonexistent", "version", "--client", "-o", "json"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    from certpolicy import __version__

    assert json.loads(proc.stdout)["client"]["version"] == __version__


def test_version_without_a_cluster_is_unknown_not_ok():
    proc = subprocess.run([*PLUGIN, "--kubeconfig", "/nonexistent", "version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3 and "Client Version:" in proc.stdout and "Operator: unknown" in proc.stdout


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_verbs_and_flags():
    script = subprocess.run([*PLUGIN, "completion", "bash"], capture_output=True, text=True, timeout=60, check=True).stdout
    probe = ('source /dev/stdin; COMP_WORDS=(kubectl-certpolicy %s); COMP_CWORD=%d; COMP_LINE="${COMP_WORDS[*]}"; '
             'COMP_POINT=${#COMP_LINE}; _shtab_kubectl_certpolicy; echo "${COMPREPLY[@]}"')
    verbs = subprocess.run(["bash", "-c", probe % ("ro", 1)], input=script, capture_output=True, text=True, timeout=60)
    assert verbs.stdout.split() == ["rotate"], verbs.stderr
    flags = subprocess.run(["bash", "-c", probe % ("why --out", 2)], input=script, capture_output=True, text=True,
                           timeout=60)
    assert "--output" in flags.stdout.split(), flags.stderr


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_completion_scripts_name_every_verb(shell):
    script = subprocess.run([*PLUGIN, "completion", shell], capture_output=True, text=True, timeout=60, check=True).stdout
    assert all(verb in script for verb in cli.VERBS)
    if shutil.which(shell):
        check = ["zsh", "-n"] if shell == "zsh" else ["fish", "--no-execute"]
        assert subprocess.run([*check, "/dev/stdin"], input=script, capture_output=True, timeout=60).returncode == 0


# --- what the reads keep and ask for --------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_certificates_only_keeps_no_key():
    ca = certgen.root("strip CA")
    leaf = certgen.leaf(ca, "strip.test")
    key_pem = certgen.key_pem(leaf.key)
    secret = {"metadata": {"name": "s", "namespace": "n"}, "type": "kubernetes.io/tls", "data": {
        "tls.crt": _b64(certgen.pem(leaf) + key_pem),  # a key pasted into the certificate field
        "tls.key": _b64(key_pem), "ca.crt": _b64(certgen.pem(ca)), "password": _b64(b"hunter2"),
        "bundle.pem": _b64(certgen.pem(ca)), "garbage": "%%%"}}
    kept = certificates_only(secret)
    assert set(kept["data"]) == {"tls.crt", "ca.crt", "bundle.pem"}
    decoded = b"".join(base64.b64decode(v) for v in kept["data"].values())
    assert b"PRIVATE KEY" not in decoded and key_pem not in decoded
    assert base64.b64decode(kept["data"]["tls.crt"]).strip() == certgen.pem(leaf).strip()
    assert kept["metadata"] == secret["metadata"]


class Recorder:
    """Answers GETs from a dict of path -> list of objects (a list) or object (a get); records them."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers, self.requests, self.accepts = answers, [], []

    def get(self, path: str, query: Mapping[str, Any] | None = None, accept: str = "application/json") -> dict:
        self.requests.append((path, dict(query or {})))
        self.accepts.append(accept)
        found = self.answers.get(path)
        if isinstance(found, list):
            return {"items": [o for o in found if _matches(o, query or {})], "metadata": {}}
        if found is None:
            from kubernetes.client import ApiException

            raise ApiException(status=404, reason="Not Found")
        return found


def _matches(obj: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    field = query.get("fieldSelector", "")
    if field.startswith("type!="):
        return obj.get("type") != field[6:]
    if field.startswith("type="):
        return obj.get("type") == field[5:]
    return True


def _tls(ns: str, name: str, labels: dict[str, str]) -> dict:
    ca = certgen.root("rec CA")
    return {"metadata": {"namespace": ns, "name": name, "labels": labels, "resourceVersion": "1"},
            "type": "kubernetes.io/tls", "data": certgen.tls_secret(certgen.leaf(ca, f"{name}.test"))["data"]}


def test_a_policys_selection_lists_only_where_and_what_it_selects():
    from certpolicy.inventory.selection import select

    namespaces = [{"metadata": {"name": n, "labels": {"team": t}}} for n, t in (("a", "x"), ("b", "y"), ("c", "x"))]
    raw = Recorder({
        "/api/v1/namespaces": namespaces,
        "/api/v1/namespaces/a/secrets": [_tls("a", "web-tls", {"app": "web"})],
        "/api/v1/namespaces/c/secrets": [],
        "/api/v1/namespaces/b/secrets/named-tls": _tls("b", "named-tls", {}),
    })
    spec = {"selector": {"namespaceSelector": {"matchLabels": {"team": "x"}},
                         "secretSelector": {"matchLabels": {"app": "web"}},
                         "names": [{"namespace": "b", "name": "named-tls"}, {"namespace": "b", "name": "gone"}]}}
    inventory = for_policy(raw, spec)
    paths = [(p, q.get("fieldSelector"), q.get("labelSelector")) for p, q in raw.requests]
    assert paths == [
        ("/api/v1/namespaces", None, None),
        ("/api/v1/namespaces/a/secrets", "type=kubernetes.io/tls", "app=web"),
        ("/api/v1/namespaces/a/secrets", "type!=kubernetes.io/tls", "app=web"),
        ("/api/v1/namespaces/c/secrets", "type=kubernetes.io/tls", "app=web"),
        ("/api/v1/namespaces/c/secrets", "type!=kubernetes.io/tls", "app=web"),
        ("/api/v1/namespaces/b/secrets/named-tls", None, None),
        ("/api/v1/namespaces/b/secrets/gone", None, None),
    ]  # never /api/v1/secrets, never Pods (not mountedOnly)
    from certpolicy.kube.rawapi import METADATA_ONLY

    assert raw.accepts[0] == METADATA_ONLY  # namespaces: labels only, as PartialObjectMetadata
    selection = select(inventory, spec["selector"])
    assert [(r.namespace, r.name) for r in selection.secrets] == [("a", "web-tls"), ("b", "named-tls")]
    assert selection.missing == (("b", "gone"),)
    assert "PRIVATE KEY" not in repr(inventory)

    only_c = Recorder(dict(raw.answers))
    for_policy(only_c, spec, namespace="c")
    assert [p for p, _q in only_c.requests] == ["/api/v1/namespaces", "/api/v1/namespaces/c/secrets",
                                                "/api/v1/namespaces/c/secrets"]
