from certpolicy.handlers.problems import Problem, degraded_condition


def test_degraded_names_the_first_problem_and_lists_the_first_messages():
    problems = [Problem("TrustBundleMissing", "gone"), *[Problem("SecretNotFound", f"m{i}") for i in range(7)]]
    cond = degraded_condition(problems)
    assert cond.status is True and cond.reason == "TrustBundleMissing"
    assert cond.message == "gone; m0; m1; m2; m3"


def test_no_problem_is_not_degraded():
    cond = degraded_condition([])
    assert cond.status is False and cond.reason == "AsExpected"
