"""Suite-wide settings.

`make test` runs two pytest-xdist workers on a 2-core machine: with torch's default intra-op
threads each worker would spin up one thread per core and the four threads wait on each other
(measured: small ops 5-10x slower). One intra-op thread per worker keeps the cores busy.
"""

import os

import torch
from hypothesis import settings

torch.set_num_threads(1)

# Property tests (tests/test_properties.py): 30 examples each in `make test`; `HYPOTHESIS_PROFILE=hunt`
# searches far longer (used when hunting for new failures, not in CI).
settings.register_profile("ci", max_examples=30, derandomize=True)
settings.register_profile("hunt", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
