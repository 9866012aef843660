"""The operator's re-check intervals as the test suite sets them (``certpolicy.environment``).

Production looks again every 30 s at what it cannot watch (refused rotation probes, a bundle
target that is not ours) and retries a failed pass after 30 s. A test
that waits for one of those would wait half a minute; the suite sets them to a couple of seconds
for every operator it runs (conftest puts them in the environment at start-up, which operator
processes inherit). Tests that watch for a quiet period derive its length from these values.
"""

from __future__ import annotations

#: Seconds. Short enough that a wait costs little, long enough that a loop re-checking at this
#: pace is not a storm on a loaded 2-core machine.
RECHECK = 2.0

OPERATOR_ENV = {
    "CERTPOLICY_PROBE_RETRY": f"{RECHECK:g}",
    "CERTPOLICY_NOT_MANAGED_RECHECK": f"{RECHECK:g}",
    "CERTPOLICY_ERROR_RETRY": f"{RECHECK:g}",
}
