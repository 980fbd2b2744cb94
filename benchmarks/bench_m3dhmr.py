"""M3DHMR speed: inference latency breakdown at batch 1, decoder variants, DSC implementations.

Sections (all on the CPU, `--threads` intra-op threads, median of `--repeats` timed runs):

1. `model`: batch-1 forward of the full model at 128×128, broken down into encoder, decoder
   (lifting + spiral layers + head + ROI + joint regression) and root recovery (closed form, and
   closed form + robust refinement), plus the whole torch forward and onnxruntime on the exported
   image → (2D joints, vertices, 3D joints) graph. Reports images/s.
2. `decoder`: every decoder switch (DSC with spiral / vertex attention, SpiralConv++, DSConv),
   forward at batch 1 and forward+backward at batch 32.
3. `dsc`: the two ways to evaluate a DSC layer's depthwise stage at each decoder level, batch 1
   and 32: mixing the K kernels per vertex (shipped) vs computing K branch outputs and mixing them.

Timings on a shared machine vary with its load: ratios within one run are meaningful, absolute
numbers only on an idle machine. With more threads than idle cores, small ops slow down many
times over (OpenMP barriers wait for descheduled threads); compare --threads 1 and 2.

Usage: .venv/bin/python benchmarks/bench_m3dhmr.py [--threads 2] [--repeats 30]
           [--backbone stacked_resnet18] [--width 64] [--sections model,decoder,dsc]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from _timing import run_times


def timed(fn, repeats: int, warmup: int = 3) -> float:
    """Median seconds of `fn()` over `repeats` runs."""
    return statistics.median(run_times(fn, repeats, warmup))


def bench_model(args) -> None:
    from handrecon.geometry.root import recover_root_translation, refine_root_translation
    from handrecon.models.heads import normalized_to_pixels
    from handrecon.models.m3dhmr import M3DHMR, M3DHMRAdapter

    model = M3DHMR(backbone=args.backbone, backbone_kwargs={"width": args.width} if "resnet" in args.backbone else {},
                   conv=args.conv, num_kernels=args.kernels, attention_input=args.attention).eval()
    n_enc = sum(p.numel() for p in model.encoder.parameters())
    n_dec = sum(p.numel() for p in model.decoder.parameters())
    image = torch.randn(1, 3, 128, 128)
    K = torch.tensor([[[400.0, 0, 64], [0, 400.0, 64], [0, 0, 1]]])
    with torch.no_grad():
        enc = model.encoder(image)
        out = model(image)
        t_enc = timed(lambda: model.encoder(image), args.repeats)
        t_dec = timed(lambda: torch.einsum("jv,bvc->bjc", model.kp_regressor,
                                           model.decoder(enc["latent"], enc["uv"])), args.repeats)
        t_all = timed(lambda: model(image), args.repeats)
        joints = out["joints"].double() + 0.0
        uv = normalized_to_pixels(out["uv"].double(), 128, 128)
        t_root = timed(lambda: recover_root_translation(joints, uv, K.double()), args.repeats)
        t_refine = timed(lambda: refine_root_translation(joints, uv, K.double()), args.repeats)
    print(f"model: {args.backbone} (width {args.width}), conv {args.conv} K={args.kernels} attention "
          f"{args.attention}, ROI on; params encoder {n_enc / 1e6:.2f} M, decoder {n_dec / 1e6:.2f} M")
    print(f"  encoder            {t_enc * 1e3:8.2f} ms")
    print(f"  decoder            {t_dec * 1e3:8.2f} ms")
    print(f"  root closed form   {t_root * 1e3:8.2f} ms")
    print(f"  root + refinement  {t_refine * 1e3:8.2f} ms")
    print(f"  torch forward      {t_all * 1e3:8.2f} ms  -> {1 / t_all:6.1f} images/s "
          f"({1 / (t_all + t_root):.1f} with closed-form root, {1 / (t_all + t_refine):.1f} with refinement)")
    try:
        import onnxruntime as ort
    except ImportError:
        print("  onnxruntime not installed: skipped")
        return
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m3dhmr.onnx"
        M3DHMRAdapter(model.inference_spec()).export_network(model, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        feed = {"image": image.numpy()}
        t_ort = timed(lambda: sess.run(None, feed), args.repeats)
    print(f"  onnxruntime        {t_ort * 1e3:8.2f} ms  -> {1 / t_ort:6.1f} images/s; ratio torch/ort "
          f"{t_all / t_ort:.2f}")


def bench_decoder(args) -> None:
    from handrecon.models.m3dhmr import M3DHMR

    variants = [("dsc", "spiral"), ("dsc", "vertex"), ("spiral", "spiral"), ("dsep", "spiral")]
    base = None
    print(f"decoder (ROI on, K={args.kernels}): fwd batch 1 | fwd+bwd batch 32")
    for conv, att in variants:
        torch.manual_seed(0)
        dec = M3DHMR(backbone="stacked_resnet18", backbone_kwargs={"width": 16}, conv=conv,
                     num_kernels=args.kernels, attention_input=att).decoder
        lat1, uv1 = torch.randn(1, 256, 4, 4), torch.rand(1, 21, 2)
        lat, uv = torch.randn(32, 256, 4, 4), torch.rand(32, 21, 2)
        with torch.no_grad():
            t1 = timed(lambda: dec(lat1, uv1), args.repeats)
        t32 = timed(lambda: dec(lat, uv).sum().backward(), max(3, args.repeats // 6), warmup=1)
        base = base or t32
        name = f"{conv}" + (f" ({att} attention)" if conv == "dsc" else "")
        n = sum(p.numel() for p in dec.parameters())
        print(f"  {name:26s} {n / 1e6:5.2f} M params  {t1 * 1e3:7.2f} ms | {t32 * 1e3:8.1f} ms  "
              f"(x{t32 / base:.2f} of the first)")


def bench_dsc(args) -> None:
    K, L = args.kernels, 9
    print(f"DSC depthwise stage (K={K}, L={L}): mix kernels per vertex (shipped) vs K branch outputs")
    for B in (1, 32):
        for V, C in ((98, 256), (195, 128), (389, 64), (778, 32)):
            s = torch.randn(B, V, L, C)
            pi = torch.softmax(torch.randn(B, V, K), -1)
            w = torch.randn(K, L, C)
            with torch.no_grad():
                mix = timed(lambda: (s * (pi @ w.reshape(K, L * C)).reshape(B, V, L, C)).sum(2), args.repeats)
                branch = timed(lambda: (pi[..., None] * torch.einsum("bvlc,klc->bvkc", s, w)).sum(2), args.repeats)
            print(f"  batch {B:2d} V={V:3d} C={C:3d}: mix {mix * 1e3:7.3f} ms, branches {branch * 1e3:7.3f} ms "
                  f"(ratio {branch / mix:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--backbone", default="stacked_resnet18")
    ap.add_argument("--width", type=int, default=64, help="ResNet trunk width of stacked encoders (64 = standard)")
    ap.add_argument("--conv", default="dsc")
    ap.add_argument("--kernels", type=int, default=8)
    ap.add_argument("--attention", default="spiral")
    ap.add_argument("--sections", default="model,decoder,dsc")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    np.random.seed(0)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {args.threads} thread(s)")
    sections = {"model": bench_model, "decoder": bench_decoder, "dsc": bench_dsc}
    for name in args.sections.split(","):
        sections[name](args)


if __name__ == "__main__":
    main()
