"""The hypothesis profile of the property tests: a fixed number of derandomized examples, no database.

Derandomized examples and no example database make every run (and CI) draw the same cases, so a
failure here is reproducible and never appears or disappears by luck. ``HYPOTHESIS_PROFILE=thorough``
draws ten times as many (still derandomized) for a longer local search.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile("properties", max_examples=30, **_COMMON)
settings.register_profile("thorough", max_examples=300, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "properties"))
