"""HandOS cost per 640x480 image on 2 cores: the frozen detector, then the decoder with 1, 4 and
10 hands, and the whole `predict` path.

    .venv/bin/python benchmarks/bench_handos.py [--model RUN_OR_CHECKPOINT] [--threads 2]

The decoder's cost grows with the number of hands it decodes, so the script decodes the top 1, 4
and 10 queries of the detector (whatever their scores) and times: the detector forward; the
decoder (side tuning, memory projection, expansion, lifting, 6 layers, heads, up-sampling) for N
hands; `Predictor.predict` on the image (letterbox, detector, filtering, decoder, camera,
sides), on noise and on the bundled sample scene (two hands); with ``instances: detections`` also
the served detections it decodes (detector and box verifier). Median of `--repeats` runs after a
warm-up, each a fresh detector pass (`Detector.forget`: the detector keeps its last output for a
repeated image). Without a trained model (`--model`) it times the architecture of configs/handos_cpu.yaml with random decoder weights (the cost does not depend on
the weights) and says so; `--config configs/handos_paper.yaml` times the paper's decoder (d 256,
778 vertex queries) on our detector instead. Target of issue 14: <= 0.5 s per image with up to 4 hands.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from _timing import fresh_times, run_times

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SCENE = ROOT / "src" / "handrecon" / "assets" / "sample" / "scene.jpg"


def get_model(name: str | None, config: str):
    """(HandOS module, Predictor or None, description)."""
    import handrecon
    from handrecon.models.handos import HandOS

    try:
        if name is None:
            raise FileNotFoundError("no --model given")
        predictor = handrecon.load(name)
        return predictor.model, predictor, name
    except (ValueError, FileNotFoundError) as e:
        kwargs = yaml.safe_load((ROOT / config).read_text())["model"]["kwargs"]
        kwargs["detector"] = "handrecon-hand-detector"  # the paper's Grounding DINO is not on this machine
        return HandOS(**kwargs).eval(), None, f"random decoder weights, {config} on our detector ({e})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a trained HandOS run or checkpoint (default: random weights)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--config", default="configs/handos_cpu.yaml",
                    help="without a loadable --model: the architecture to time (configs/handos_paper.yaml: d 256, 778 queries)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, predictor, what = get_model(args.model, args.config)
    from handrecon.models.handos.detections import letterbox
    from handrecon.utils.image import normalize_images

    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    canvas, _ = letterbox(image, model.input_size)
    pixels = torch.from_numpy(normalize_images(canvas[None]))
    print(f"model: {what}; {args.threads} threads; one 640x480 image, input {model.input_size} px")
    with torch.no_grad():
        det_t = statistics.median(fresh_times(model.detector, lambda: model.detector(pixels), args.repeats, 2))
        det = model.detector(pixels)
        print(f"  detector                 {det_t * 1000:7.1f} ms")
        order = det.scores[0].argsort(descending=True)
        for n in (1, 4, 10):
            query = order[:n]
            image_index = torch.zeros(n, dtype=torch.long)

            def decode():
                layers, _ = model.decode(det, pixels, image_index, query)
                return model.decode_layer(layers[-1], model.input_size, None)

            t = statistics.median(run_times(decode, args.repeats, 1))
            print(f"  decoder, {n:>2} hand(s)       {t * 1000:7.1f} ms   detector + decoder {(det_t + t) * 1000:7.1f} ms")
        if getattr(model, "instances", "queries") == "detections":  # the served detections are the instances
            t = statistics.median(fresh_times(model.detector, lambda: model.detector.detect([image]), args.repeats, 1))
            print(f"  served detections (detector, box verifier: instances 'detections') {t * 1000:7.1f} ms")
    if predictor is not None:
        t = statistics.median(fresh_times(model.detector, lambda: predictor.predict(image), args.repeats, 1))
        print(f"  predict (whole path, {len(predictor.predict(image).hands)} hands found in noise) {t * 1000:7.1f} ms")
        scene = np.asarray(Image.open(SAMPLE_SCENE).convert("RGB"))
        t = statistics.median(fresh_times(model.detector, lambda: predictor.predict(scene), args.repeats, 1))
        found = len(predictor.predict(scene).hands)
        print(f"  predict (whole path, the bundled sample scene {scene.shape[1]}x{scene.shape[0]}, {found} hands found) "
              f"{t * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
