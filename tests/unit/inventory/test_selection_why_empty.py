"""NothingSelected says which part of the selector matched nothing (issue 22, item 9): counts only."""

from certpolicy.inventory.selection import _why_empty


def test_each_part_that_can_match_nothing_is_named():
    assert _why_empty(False, 0, 0, True) == "namespaceSelector matches 0 namespaces"
    assert _why_empty(False, 2, 0, True) == "the 2 namespaces namespaceSelector matches hold no TLS Secret"
    assert _why_empty(True, 0, 0, True) == "the cluster holds no TLS Secret"
    assert _why_empty(False, 3, 7, False) == ("secretSelector matches none of the 7 TLS Secrets in the 3 namespaces "
                                              "namespaceSelector matches, nor another Secret with its labels")
