import pytest

from certpolicy.kube.selectors import LabelSelector


@pytest.mark.parametrize(
    ("spec", "labels", "expected"),
    [
        (None, {}, True),
        ({}, {"a": "b"}, True),
        ({"matchLabels": {"env": "uat"}}, {"env": "uat", "x": "y"}, True),
        ({"matchLabels": {"env": "uat"}}, {"env": "prod"}, False),
        ({"matchLabels": {"env": "uat"}}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["uat", "prod"]}]}, {"env": "prod"}, True),
        ({"matchExpressions": [{"key": "env", "operator": "In", "values": ["uat"]}]}, {}, False),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, {}, True),
        ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, {"env": "prod"}, False),
        ({"matchExpressions": [{"key": "env", "operator": "Exists"}]}, {"env": ""}, True),
        ({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}, {"env": "x"}, False),
        ({"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]}, {"a": "1"}, False),
    ],
)
def test_matches_like_the_api_server(spec, labels, expected):
    assert LabelSelector.from_spec(spec).matches(labels) is expected


def test_unknown_operator_is_an_error():
    with pytest.raises(ValueError, match="Equals"):
        LabelSelector.from_spec({"matchExpressions": [{"key": "a", "operator": "Equals"}]})


def test_to_query():
    sel = LabelSelector.from_spec({"matchLabels": {"app": "hl7"}, "matchExpressions": [
        {"key": "env", "operator": "In", "values": ["uat", "dev"]}, {"key": "x", "operator": "DoesNotExist"}]})
    assert sel.to_query() == "app=hl7,env in (dev,uat),!x"
