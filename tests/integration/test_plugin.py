"""``kubectl certpolicy`` on the local control plane: each verb, table and JSON, through kubectl itself.

The operator runs in-process; the plugin runs as its console script (``kubectl-certpolicy``), as
a user would run it, against the same API server.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import uuid

import pytest

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION, condition, policy_status
from kubewait import wait_for
from paths import REPO
from plugincli import PLUGIN, plugin


def via_kubectl(cluster, *args: str) -> subprocess.CompletedProcess:
    """The same verb through kubectl's plugin discovery, as a user types it (kubectl takes no flags
    before a plugin's name, so the kubeconfig comes from KUBECONFIG)."""
    env = dict(os.environ, PATH=f"{PLUGIN.parent}{os.pathsep}{os.environ['PATH']}", KUBECONFIG=str(cluster.kubeconfig))
    return subprocess.run([str(cluster.binaries.kubectl), "certpolicy", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def same_through_kubectl(cluster, *args: str, drop: tuple[str, ...] = ()) -> dict:
    """Runs a JSON verb both ways; asserts the same exit code and the same document (minus ``drop``
    keys, which hold the time of the run) and returns it."""
    direct, through = plugin(cluster, *args), via_kubectl(cluster, *args)
    assert through.returncode == direct.returncode, (through.stderr, direct.stderr)
    docs = [json.loads(direct.stdout), json.loads(through.stdout)]
    for doc in docs:
        for key in drop:
            doc.pop(key)
    assert docs[0] == docs[1]
    return docs[1]


@pytest.fixture
def world(operator, policies, core_v1, custom_api, unique_name):
    """Three policies: one with a Critical violation, one Degraded (its trust bundle is missing),
    one healthy that runs a CA, issues a leaf into a Pod's volume and fills a bundle a Pod mounts."""
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"plugin": label})
    user_ca = certgen.root("plugin user CA")
    bad = certgen.leaf(user_ca, "legacy.plugin.test", eku=["serverAuth"])
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "legacy-tls", "labels": {"app": "legacy"}},
                                          "type": "kubernetes.io/tls", "data": certgen.tls_secret(bad)["data"]})
    names = {"bad": f"{unique_name}-bad", "degraded": f"{unique_name}-degraded", "good": f"{unique_name}-good"}
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": names["bad"]},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"plugin": label}},
                                    "secretSelector": {"matchLabels": {"app": "legacy"}}},
                       "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}}})
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": names["degraded"]},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"plugin": label}},
                                    "secretSelector": {"matchLabels": {"app": "none"}}},
                       "requirements": {"trustBundle": {"configMap": {"namespace": ns, "name": "absent"}}}}})
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": names["good"]},
              "spec": {"selector": {"names": [{"namespace": ns, "name": "api-tls"}]},
                       "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
                       "ca": {"secretName": f"{unique_name}-ca"},
                       "trustBundles": [{"configMap": {"name": "plugin-ca"}, "namespaces": [ns]}],
                       "issuance": [{"secretName": "api-tls", "namespace": ns, "dnsNames": ["api.plugin.test"]}]}})
    for pod, volume in (("api", {"name": "tls", "secret": {"secretName": "api-tls"}}),
                        ("client", {"name": "ca", "configMap": {"name": "plugin-ca"}}),
                        ("unrelated", {"name": "tls", "secret": {"secretName": "legacy-tls"}})):
        core_v1.create_namespaced_pod(ns, {"metadata": {"name": pod}, "spec": {
            "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": volume["name"], "mountPath": "/m"}]}],
            "volumes": [volume]}})

    def settled():
        bad_st, deg_st, good_st = (policy_status(custom_api, names[k]) for k in ("bad", "degraded", "good"))
        return (condition(bad_st, "Compliant").get("status") == "False"
                and condition(deg_st, "Degraded").get("status") == "True"
                and (good_st.get("issued") or {}).get("ready") == 1
                and (good_st.get("bundleTargets") or {}).get("verified") == 1
                and condition(good_st, "Compliant").get("status") == "True")

    wait_for(settled, timeout=60, what="three policies settled")
    return ns, names, policy_status(custom_api, names["good"])["ca"]["fingerprint"]


def test_status_worst_first(cluster, world):
    ns, names, _fp = world
    doc = json.loads(plugin(cluster, "status", "-o", "json").stdout)
    mine = [p for p in doc["policies"] if p["name"] in names.values()]
    assert [p["name"] for p in mine] == [names["bad"], names["degraded"], names["good"]]
    bad, degraded, good = mine
    assert bad["rank"] == "Critical" and bad["worst"]["name"] == "legacy-tls"
    assert bad["worst"]["reasons"] == ["MissingClientAuth"] and bad["worst"]["namespace"] == ns
    assert degraded["rank"] == "Degraded" and degraded["degraded"] == "TrustBundleMissing"
    assert degraded["compliant"] == "Unknown" and degraded["compliantReason"] == "TrustBundleMissing"
    assert good["rank"] == "OK" and good["selected"] == 1 and good["ca"].startswith("sha256:")

    # through kubectl's plugin discovery, as a user types it
    proc = via_kubectl(cluster, "status")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["NAME", "STATE", "COMPLIANT", "VIOLATING"]
    order = [line.split()[0] for line in lines[1:] if line.split()[0] in names.values()]
    assert order == [names["bad"], names["degraded"], names["good"]]
    assert f"{ns}/legacy-tls MissingClientAuth" in table and "Degraded/TrustBundleMissing" in table
    # kubectl's flags before the verb, as kubectl users type them, through kubectl's plugin discovery
    flags_first = via_kubectl(cluster, "--kubeconfig", str(cluster.kubeconfig), "-o", "yaml", "status")
    assert flags_first.returncode == 0, flags_first.stderr
    import yaml

    listed = [p["name"] for p in yaml.safe_load(flags_first.stdout)["policies"] if p["name"] in names.values()]
    assert listed == [names["bad"], names["degraded"], names["good"]]


def test_blast_radius_of_a_policys_ca(cluster, world, admission_api, core_v1):
    ns, names, fp = world
    ca_pem = base64.b64encode(core_v1.read_namespaced_config_map("plugin-ca", ns).data["ca.crt"].encode()).decode()
    hook = f"plugin-{uuid.uuid4().hex[:6]}"
    admission_api.create_validating_webhook_configuration({
        "metadata": {"name": hook},
        "webhooks": [{"name": "never.plugin.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                      "failurePolicy": "Ignore",
                      "rules": [{"apiGroups": ["plugin.test"], "apiVersions": ["v1"], "operations": ["CREATE"],
                                 "resources": ["nothing"]}],
                      "clientConfig": {"url": "https://127.0.0.1:1/never", "caBundle": ca_pem}}]})
    try:
        doc = json.loads(plugin(cluster, "blast-radius", fp, "-o", "json").stdout)
        got = {(d["kind"], d["namespace"], d["name"]) for d in doc["dependents"]}
        assert ("Secret", ns, "api-tls") in got  # issued by it
        assert ("ConfigMap", ns, "plugin-ca") in got  # bundle target
        assert ("Pod", ns, "api") in got and ("Pod", ns, "client") in got
        assert ("ValidatingWebhookConfiguration", "", hook) in got
        assert ("CertificatePolicy", "", names["good"]) in got
        assert ("Secret", "certpolicy-system", f"{names['good'].removesuffix('-good')}-ca") in got  # the CA's own Secret
        assert not {n for k, s, n in got if n in ("legacy-tls", "unrelated")}  # another CA's
        assert doc["cas"][0]["fingerprint"] == fp
        via = {(d["kind"], d["name"]): d["via"] for d in doc["dependents"]}
        assert via[("Secret", "api-tls")].startswith("its certificate chains to the CA")
        assert via[("Pod", "client")] == "mounts ConfigMap plugin-ca"
        assert via[("ValidatingWebhookConfiguration", hook)] == "webhook never.plugin.test caBundle"

        # the same CA named by its bundle, or by a prefix of its fingerprint: the same answer
        by_bundle = json.loads(plugin(cluster, "blast-radius", f"configmap/{ns}/plugin-ca", "-o", "json").stdout)
        by_prefix = json.loads(plugin(cluster, "blast-radius", fp[:20], "-o", "json").stdout)
        assert by_bundle["dependents"] == by_prefix["dependents"] == doc["dependents"]

        assert same_through_kubectl(cluster, "blast-radius", fp, "-o", "json")["dependents"] == doc["dependents"]
        table = plugin(cluster, "blast-radius", f"policy/{names['good']}")
        assert table.returncode == 0, table.stderr
        assert table.stdout.startswith(f"CA {fp}")
        assert "objects depend on it: " in table.stdout and "mounts Secret api-tls" in table.stdout
    finally:
        admission_api.delete_validating_webhook_configuration(hook)


def test_blast_radius_of_an_unknown_ca_exits_3(cluster, crd):
    proc = plugin(cluster, "blast-radius", "sha256:00000000deadbeef")
    assert proc.returncode == 3 and "no certificate with fingerprint" in proc.stderr
    proc = plugin(cluster, "blast-radius", "configmap/")
    assert proc.returncode == 3 and "expected configmap/NAMESPACE/NAME" in proc.stderr
    # without a namespace: -n, else the context's (none here: default), as kubectl
    proc = plugin(cluster, "blast-radius", "configmap/nowhere")
    assert proc.returncode == 3 and "ConfigMap default/nowhere not found" in proc.stderr
    proc = plugin(cluster, "-n", "elsewhere", "blast-radius", "configmap/nowhere")
    assert proc.returncode == 3 and "ConfigMap elsewhere/nowhere not found" in proc.stderr
    proc = plugin(cluster, "status", "--bogus")
    assert proc.returncode == 3
    proc = via_kubectl(cluster, "blast-radius", "sha256:00000000deadbeef")
    assert proc.returncode == 3 and "no certificate with fingerprint" in proc.stderr


@pytest.fixture(scope="session")
def admission_api(api_client):
    import kubernetes

    return kubernetes.client.AdmissionregistrationV1Api(api_client)


def test_why_a_secret_and_a_pod(cluster, world):
    ns, names, fp = world
    doc = json.loads(plugin(cluster, "why", f"{ns}/api-tls", "-o", "json").stdout)
    (secret,) = doc["secrets"]
    assert [p["name"] for p in secret["policies"]] == [names["good"]] and secret["policies"][0]["compliant"]
    assert secret["anchor"] == fp and [c["role"] for c in secret["chain"]] == ["leaf", "root"]
    assert secret["firstBreaks"]["at"] == min(c["notAfter"] for c in secret["chain"])
    assert {"kind": "ConfigMap", "namespace": ns, "name": "plugin-ca", "via": "trust bundle in key ca.crt"} in secret["bundles"]

    pod = json.loads(plugin(cluster, "why", f"pod/{ns}/unrelated", "-o", "json").stdout)
    (legacy,) = pod["secrets"]
    assert legacy["name"] == "legacy-tls"
    verdicts = {p["name"]: p for p in legacy["policies"]}
    assert not verdicts[names["bad"]]["compliant"]
    assert [f["reason"] for f in verdicts[names["bad"]]["findings"] if f["severity"] == "Critical"] == ["MissingClientAuth"]

    assert same_through_kubectl(cluster, "why", f"pod/{ns}/unrelated", "-o", "json", drop=("evaluatedAt",)) == {
        k: v for k, v in pod.items() if k != "evaluatedAt"}
    table = plugin(cluster, "why", f"{ns}/api-tls")
    assert table.returncode == 0 and "first breaks" in table.stdout and f"policy {names['good']}: compliant" in table.stdout
    missing = plugin(cluster, "why", f"pod/{ns}/nope")
    assert missing.returncode == 3 and "not found" in missing.stderr


def test_why_says_not_checked_when_a_policys_trust_bundle_cannot_be_read(cluster, world, policies, unique_name):
    """A policy whose trust bundle is absent judged api-tls "compliant" in `why` (its chain was never
    verified). As the operator (Compliant=Unknown/TrustBundleMissing) and `check --cluster`: no verdict."""
    ns, _names, _fp = world
    name = f"{unique_name}-nobundle"
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
              "spec": {"selector": {"names": [{"namespace": ns, "name": "api-tls"}]},
                       "requirements": {"trustBundle": {"configMap": {"namespace": ns, "name": "absent"}}}}})
    doc = json.loads(plugin(cluster, "why", f"{ns}/api-tls", "-o", "json").stdout)
    verdicts = {p["name"]: p for p in doc["secrets"][0]["policies"]}
    assert verdicts[name]["compliant"] is None and "chains are not checked" in verdicts[name]["note"], verdicts[name]
    table = plugin(cluster, "why", f"{ns}/api-tls")
    assert f"policy {name}: not checked" in table.stdout and f"policy {name}: compliant" not in table.stdout, table.stdout


def test_check_cluster_is_a_what_if_with_check_exit_codes(cluster, world, custom_api, tmp_path):
    ns, _names, _fp = world
    name = f"what-if-{uuid.uuid4().hex[:6]}"

    def check(requirements, *extra, names=("legacy-tls",), selector=None):
        path = tmp_path / f"{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy",
                                    "metadata": {"name": name}, "spec": {
                                        "selector": selector or {"names": [{"namespace": ns, "name": n}
                                                                           for n in names]},
                                        "requirements": requirements}}))
        return plugin(cluster, "check", "--cluster", "--policy", str(path), *extra)

    assert check({"extendedKeyUsages": ["serverAuth"]}).returncode == 0
    critical = check({"extendedKeyUsages": ["serverAuth", "clientAuth"]}, "-o", "json")
    assert critical.returncode == 2
    (result,) = json.loads(critical.stdout)["results"]
    kubectl_path = tmp_path / "through-kubectl.yaml"
    kubectl_path.write_text(json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy",
                                        "metadata": {"name": name}, "spec": {
                                            "selector": {"names": [{"namespace": ns, "name": "legacy-tls"}]},
                                            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}}}))
    through = same_through_kubectl(cluster, "check", "--cluster", "--policy", str(kubectl_path), "-o", "json",
                                   drop=("evaluatedAt",))
    assert through["results"] == json.loads(critical.stdout)["results"]
    assert result["target"] == f"secret {ns}/legacy-tls"
    assert "MissingClientAuth" in [f["reason"] for f in result["findings"]]
    soon = check({"extendedKeyUsages": ["serverAuth"]}, "--at", "+70d")  # the leaf lives 90 days
    assert soon.returncode == 1 and "ExpiringSoon" in soon.stdout
    assert check({"extendedKeyUsages": ["serverAuth"]}, "--at", "+3650d").returncode == 2
    bad = check({"extendedKeyUsages": ["serverAuth"], "minimumRSABits": "lots"})
    assert bad.returncode == 3 and "invalid policy" in bad.stderr
    # Issue 22 item 3: the operator's Compliant rule. Not everything checked: 3, never 0 ...
    missing_name = check({"extendedKeyUsages": ["serverAuth"]}, names=("legacy-tls", "never-created"))
    assert missing_name.returncode == 3, missing_name.stderr
    missing_bundle = check({"extendedKeyUsages": ["serverAuth"],
                            "trustBundle": {"configMap": {"namespace": ns, "name": "absent"}}})
    assert missing_bundle.returncode == 3 and "not checked" in missing_bundle.stderr, missing_bundle.stderr
    nothing = check({}, selector={"namespaceSelector": {"matchLabels": {"plugin": "no-such-label"}}})
    assert nothing.returncode == 3 and "namespaceSelector matches 0 namespaces" in nothing.stderr, nothing.stderr
    # ... and a violation still wins over a part not checked
    assert check({"extendedKeyUsages": ["serverAuth", "clientAuth"]},
                 names=("legacy-tls", "never-created")).returncode == 2
    names = [p["metadata"]["name"] for p in custom_api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]]
    assert name not in names  # a what-if: nothing was applied


def test_rotate_plan_names_what_would_stall(cluster, world, core_v1, custom_api, unique_name):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ns, names, fp = world
    clean = plugin(cluster, "rotate", "plan", names["good"], "-o", "json")
    assert clean.returncode == 0, clean.stderr
    plan = json.loads(clean.stdout)
    assert same_through_kubectl(cluster, "rotate", "plan", names["good"], "-o", "json") == plan
    # the deprecated form, kept one release: the same plan, and a warning naming the new one
    old = plugin(cluster, "rotate", names["good"], "--plan", "-o", "json")
    assert old.returncode == 0 and json.loads(old.stdout) == plan
    assert f"use `kubectl certpolicy rotate plan {names['good']}`" in old.stderr
    assert plan["ca"]["fingerprint"] == fp and plan["completes"] and plan["forecast"]["outcome"] == "Completed"
    assert plan["managedLeaves"] == [f"{ns}/api-tls"]
    assert plan["targets"] == [{"id": f"{ns}/ConfigMap/plugin-ca/ca.crt", "writable": True}]
    # propagationDelay 2m (default) + leafPropagationDelay (default: propagationDelay); the one
    # re-issue costs no time: the machine's rate window starts full
    assert plan["expectedSeconds"] == 120 + 120

    # a leaf someone else issued from the policy's CA (as a cert-manager CA Issuer would), now selected
    ca_secret = core_v1.read_namespaced_secret(f"{unique_name}-ca", "certpolicy-system")
    ca = certgen.Issued(x509.load_pem_x509_certificate(base64.b64decode(ca_secret.data["tls.crt"])),
                        serialization.load_pem_private_key(base64.b64decode(ca_secret.data["tls.key"]), None))
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "outbound-tls"}, "type": "kubernetes.io/tls",
                                          "data": certgen.tls_secret(certgen.leaf(ca, "out.plugin.test"))["data"]})
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, names["good"], {"spec": {"selector": {"names": [
        {"namespace": ns, "name": "api-tls"}, {"namespace": ns, "name": "outbound-tls"}]}}})
    core_v1.create_namespaced_pod(ns, {"metadata": {"name": "subpath"}, "spec": {"containers": [{
        "name": "c", "image": "busybox", "volumeMounts": [{"name": "ca", "mountPath": "/etc/ca.crt", "subPath": "ca.crt"}]}],
        "volumes": [{"name": "ca", "configMap": {"name": "plugin-ca"}}]}})

    def stalled():
        proc = plugin(cluster, "rotate", "plan", names["good"], "-o", "json")
        doc = json.loads(proc.stdout)
        return (proc, doc) if doc["unmanagedLeaves"] and doc["podsReadingAtStart"] else None

    proc, plan = wait_for(stalled, timeout=30, what="the plan sees the unmanaged leaf and the subPath Pod")
    assert proc.returncode == 1 and not plan["completes"] and plan["expectedSeconds"] is None
    assert plan["unmanagedLeaves"] == [f"{ns}/outbound-tls"]
    # no kubelet here: the Pod has not started, so it will load the new bundle when it does
    assert plan["podsReadingAtStart"] == [{"pod": f"{ns}/subpath", "owner": None, "leaves": [],
                                           "bundles": [f"{ns}/ConfigMap/plugin-ca/ca.crt"]}]
    fc = plan["forecast"]
    assert (fc["outcome"], fc["step"], fc["reason"]) == ("Stalled", 4, "Stalled") and "outbound-tls" in fc["message"]
    assert fc["afterSeconds"] == 120 + 24 * 3600  # step 4 reports Stalled leafTimeout after it began
    table = plugin(cluster, "rotate", "plan", names["good"])
    assert table.returncode == 1 and "WOULD STALL at step 4/5 AwaitLeaves" in table.stdout
    assert "outbound-tls" in table.stdout
    through = via_kubectl(cluster, "rotate", "plan", names["good"])
    assert through.returncode == 1 and through.stdout == table.stdout
    assert plugin(cluster, "rotate", "plan", names["bad"]).returncode == 3  # no CA: nothing to rotate


def test_status_of_a_policy_lists_its_secrets_worst_first(cluster, core_v1, policies, unique_name):
    """`status POLICY`: every Secret the policy selects, judged as the operator judges them (no
    operator needed: the plugin runs the same selection and evaluation), worst first."""
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"plugin-status": label})
    ca = certgen.root("status root")
    core_v1.create_namespaced_config_map(ns, {"metadata": {"name": "ca"}, "data": {"ca.crt": certgen.pem(ca).decode()}})
    leaves = {"fine-tls": certgen.leaf(ca, "fine.status.test"),
              "soon-tls": certgen.leaf(ca, "soon.status.test", valid_for=dt.timedelta(days=10)),
              "server-only-tls": certgen.leaf(ca, "server.status.test", eku=["serverAuth"])}
    for name, leaf in leaves.items():
        core_v1.create_namespaced_secret(ns, {"metadata": {"name": name, "labels": {"app": "status"}},
                                              "type": "kubernetes.io/tls", "data": certgen.tls_secret(leaf)["data"]})
    name = f"{unique_name}-status"
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"plugin-status": label}},
                                    "secretSelector": {"matchLabels": {"app": "status"}},
                                    "names": [{"namespace": ns, "name": "absent-tls"}]},
                       "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                        "trustBundle": {"configMap": {"namespace": ns, "name": "ca"}}}}})
    proc = plugin(cluster, "status", name, "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["policy"]["name"] == name
    got = [(s["name"], s["state"], s["reasons"]) for s in doc["secrets"]]
    assert got == [("absent-tls", "Missing", ["SecretNotFound"]),
                   ("server-only-tls", "Critical", ["MissingClientAuth"]),
                   ("soon-tls", "Warning", ["ExpiringSoon"]),
                   ("fine-tls", "OK", [])], got
    assert all(s["namespace"] == ns for s in doc["secrets"])
    assert doc["secrets"][1]["anchor"] == doc["secrets"][3]["anchor"] == fingerprint_of(ca)

    table = plugin(cluster, "status", name)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[1].split()[:3] == ["NAMESPACE", "NAME", "STATE"]
    assert [line.split()[1] for line in lines[2:]] == ["absent-tls", "server-only-tls", "soon-tls", "fine-tls"]
    unknown = plugin(cluster, "status", f"{name}-nope")
    assert unknown.returncode == 3 and f"no CertificatePolicy named '{name}-nope'" in unknown.stderr


def fingerprint_of(issued) -> str:
    from certpolicy.pki.fingerprint import certificate_fingerprint

    return certificate_fingerprint(issued.cert)


def test_why_a_missing_secret_exits_3(cluster, crd):
    """docs/operations.md: exit 3 when the question cannot be answered; it exited 0."""
    proc = plugin(cluster, "why", "default/no-such-secret")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Secret default/no-such-secret: not found" in proc.stdout
    assert "kubectl certpolicy why: Secret default/no-such-secret not found" in proc.stderr
    doc = plugin(cluster, "why", "default/no-such-secret", "-o", "json")
    assert doc.returncode == 3 and json.loads(doc.stdout)["secrets"][0]["exists"] is False


def test_a_reader_that_closes_the_pipe_gets_no_traceback(cluster, crd):
    """`kubectl certpolicy status -o json | head`: head exits, the plugin's next write fails. The
    read end is closed before the plugin writes, so the write fails every time."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([str(PLUGIN), "status", "-o", "json", "--kubeconfig", str(cluster.kubeconfig)],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr  # as a tool ended by SIGPIPE
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr


def test_without_the_crd_it_says_the_crd_is_not_installed():
    """On a control plane without the CRD, every verb said 'cannot list CertificatePolicy: HTTP 404'."""
    from certpolicy.localcluster import LocalCluster

    def status(bare) -> subprocess.CompletedProcess:
        return subprocess.run([str(PLUGIN), "status", "--kubeconfig", str(bare.kubeconfig)],
                              capture_output=True, text=True, timeout=120)

    with LocalCluster() as bare:
        proc = status(bare)
        assert proc.returncode == 3
        assert "the CertificatePolicy CRD (certificatepolicies.certpolicy.io) is not installed" in proc.stderr, proc.stderr
        assert "404" not in proc.stderr
        advice = "kubectl apply -k crds/"
        assert advice in proc.stderr
        assert bare.kubectl("apply", "-k", str(REPO / "crds"), check=False).returncode == 0  # the advice works
        after = wait_for(lambda: (p := status(bare)).returncode == 0 and p, timeout=60, what="the CRD served")
        assert after.stdout == "No CertificatePolicies.\n"
