"""HandOS on a CUDA device gives what it gives on the CPU: training step (loss, gradients) and
validation. Skipped without a GPU (CI has none); run on a GPU machine before a GPU recipe."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("transformers")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the HandOS device test needs a GPU", allow_module_level=True)

from test_handos import SMALL, batch_of, detectors, scenes  # noqa: E402,F401  (fixtures)

from handrecon.models.handos import HandOS  # noqa: E402
from handrecon.train.engine import to_device  # noqa: E402


@pytest.fixture
def full_precision():
    """cuDNN convolutions use TF32 by default: the comparison is of the same arithmetic."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.parametrize("num_2d_layers", [6, 2])
def test_a_training_step_and_validation_match_the_cpu(detectors, scenes, num_2d_layers, full_precision):
    torch.manual_seed(0)
    cpu = HandOS(detector=detectors["rt-detr"], num_2d_layers=num_2d_layers, **SMALL).train()
    gpu = copy.deepcopy(cpu).cuda()
    batch = batch_of(scenes)
    losses, grads = [], []
    for model, b in ((cpu, batch), (gpu, to_device(batch, torch.device("cuda")))):
        out = model(b)
        loss, terms = model.loss(out, b)
        loss.backward()
        losses.append(float(loss.detach()))
        grads.append(model.decoder.lift.grad.detach().cpu())
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)
    assert (grads[1] - grads[0]).norm() <= 1e-2 * grads[0].norm()  # elementwise, near-zero entries differ by rounding
    cpu.eval(), gpu.eval()
    m_cpu = cpu.validate([batch_of(scenes)])
    m_gpu = gpu.validate([to_device(batch_of(scenes), torch.device("cuda"))])
    assert m_cpu.keys() == m_gpu.keys()
    for k in m_cpu:
        assert m_gpu[k] == pytest.approx(m_cpu[k], rel=1e-3, abs=1e-3), k
