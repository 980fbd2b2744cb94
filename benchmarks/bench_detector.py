"""Latency of the hand detector on a 640x480 photo, 2 cores: torch, and onnxruntime when the
network exports.

    .venv/bin/python benchmarks/bench_detector.py [--detector handrecon-hand-detector] [--threads 2]

For each network input size (long side 320, 512, 640 px) it times `Detector.detect` on the bundled
640x480 multi-hand scene (resize, normalise, network, NMS, and the box verifier's RoI crops and
the side head when the detector has them; without both as well) and the network alone, median of
`--repeats` runs after a warm-up. Without a packaged detector it times the architecture of
configs/detector_cpu_bn_long.yaml with random weights (the cost does not depend on the weights) and says
so. Then it tries `torch.onnx.export` of the network at 512 px and times it in onnxruntime.
Target of issue 13: <= 150 ms per 640x480 image.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from _timing import fresh_times, run_times
from handrecon.demo import load_sample
from handrecon.infer.detect import build_detector

ROOT = Path(__file__).resolve().parents[1]


def get_detector(spec: str):
    """The torch detector of `spec` (NAME[:DIR] of a registered detector or KIND:DIR), or the
    architecture with random weights when no packaged one loads."""
    from handrecon.models.handos.detector import load_detector
    from handrecon.models.handos.hand_detector import HAND_DETECTOR_NAME, HandDetector, load_hand_detector

    name, _, path = spec.partition(":")
    try:
        return (load_hand_detector(path or None) if name == HAND_DETECTOR_NAME else load_detector(spec)), spec
    except ValueError as e:
        kwargs = yaml.safe_load((ROOT / "configs" / "detector_cpu_bn_long.yaml").read_text())["model"]["kwargs"]
        return HandDetector(**kwargs).frozen(), f"random weights, configs/detector_cpu_bn_long.yaml ({e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--detector", default="handrecon-hand-detector")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    detector, what = get_detector(args.detector)
    image = load_sample("scene")[0]
    print(f"detector: {what}; {args.threads} threads; the bundled 640x480 scene")
    heads = getattr(detector, "verifier", None), getattr(detector, "side_head", None)
    base = detector.config
    for size in (320, 512, 640):
        detector.config = dataclasses.replace(base, input_size=size)
        prep = detector.prepare([image])
        net = statistics.median(fresh_times(detector, lambda: detector(prep.pixel_values, prep.pixel_mask), args.repeats, 2))
        full = statistics.median(fresh_times(detector, lambda: detector.detect([image]), args.repeats, 1))
        detector.verifier, detector.side_head = None, None
        plain = statistics.median(fresh_times(detector, lambda: detector.detect([image]), args.repeats, 1))
        detector.verifier, detector.side_head = heads
        print(f"  input {size:>3} px: detect {full * 1000:6.1f} ms  (without its heads {plain * 1000:6.1f} ms; "
              f"network {net * 1000:6.1f} ms)")
    detector.config = base
    if what == args.detector:  # a packaged detector: also as `handrecon detect` serves it
        served = build_detector(args.detector, threads=args.threads)
        t = statistics.median(run_times(lambda: served.detect([image]), args.repeats, 1))
        print(f"  as served ({type(served).__name__}, input {base.input_size} px, with its heads): "
              f"detect {t * 1000:6.1f} ms")
    detector.config = dataclasses.replace(base, input_size=512)
    prep = detector.prepare([image])
    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "detector.onnx"
            torch.onnx.export(detector.model, (prep.pixel_values,), str(path), input_names=["pixel_values"],
                              output_names=["logits", "pred_boxes"], opset_version=17, dynamo=False)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            feed = {"pixel_values": prep.pixel_values.numpy()}
            t = statistics.median(run_times(lambda: session.run(None, feed), args.repeats, 2))
            print(f"  onnxruntime, input 512 px: network {t * 1000:6.1f} ms")
    except Exception as e:  # the export is best-effort: say why it did not run
        print(f"  onnxruntime: not measured ({type(e).__name__}: {str(e).splitlines()[0][:160]})")


if __name__ == "__main__":
    main()
