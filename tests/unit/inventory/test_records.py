from certpolicy.inventory.records import Reference, parse_namespace_object, parse_pod_object


def test_pod_references_from_volumes_projected_env_and_envfrom():
    pod = {
        "metadata": {"namespace": "ns", "name": "p"},
        "spec": {
            "volumes": [
                {"name": "tls", "secret": {"secretName": "mirth-tls"}},
                {"name": "bundle", "configMap": {"name": "hl7-ca"}},
                {"name": "proj", "projected": {"sources": [{"secret": {"name": "other-tls"}},
                                                           {"configMap": {"name": "cm2"}}]}},
                {"name": "scratch", "emptyDir": {}},
            ],
            "containers": [{
                "name": "c",
                "volumeMounts": [{"name": "tls", "mountPath": "/tls/tls.crt", "subPath": "tls.crt"},
                                 {"name": "bundle", "mountPath": "/ca"}],
                "env": [{"name": "P", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "p"}}}],
                "envFrom": [{"secretRef": {"name": "envs"}}],
            }],
        },
    }
    rec = parse_pod_object(pod)
    assert rec.references == frozenset({
        Reference("Secret", "mirth-tls", "volume", sub_path=True),
        Reference("ConfigMap", "hl7-ca", "volume"),
        Reference("Secret", "other-tls", "projected"),
        Reference("ConfigMap", "cm2", "projected"),
        Reference("Secret", "pw", "env"),
        Reference("Secret", "envs", "envFrom"),
    })


def test_pod_without_references_is_not_kept():
    assert parse_pod_object({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}}) is None


def test_namespace_labels():
    assert parse_namespace_object({"metadata": {"name": "a", "labels": {"env": "uat"}}}).label_map == {"env": "uat"}
