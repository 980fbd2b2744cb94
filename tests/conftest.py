"""Suite-wide settings.

`make test` runs two pytest-xdist workers on a 2-core machine: with torch's default intra-op
threads each worker would spin up one thread per core and the four threads wait on each other
(measured: small ops 5-10x slower). One intra-op thread per worker keeps the cores busy.
"""

import torch

torch.set_num_threads(1)
