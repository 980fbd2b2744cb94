"""Suite-wide settings (and a handrecon cache of the suite's own: `_own_cache`).

`make test` runs two pytest-xdist workers on a 2-core machine: with torch's default intra-op
threads each worker would spin up one thread per core and the four threads wait on each other
(measured: small ops 5-10x slower). One intra-op thread per worker keeps the cores busy.
"""

import os

import pytest
import torch
from hypothesis import settings

torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _own_cache(tmp_path_factory):
    """One handrecon cache per test worker (exports, mesh arrays), never the user's
    ~/.cache/handrecon: tests export throwaway checkpoints, which would pile up there."""
    os.environ["HANDRECON_CACHE"] = str(tmp_path_factory.mktemp("handrecon_cache"))

# Property tests (tests/test_properties.py): 30 examples each in `make test`; `HYPOTHESIS_PROFILE=hunt`
# searches far longer (used when hunting for new failures, not in CI).
settings.register_profile("ci", max_examples=30, derandomize=True)
settings.register_profile("hunt", max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
