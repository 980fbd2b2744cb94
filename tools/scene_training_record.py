"""Write the `training.json` of a recipe trained on the shared synthetic scenes
(`tools/render_scenes.sh`): what data, how long, how many threads. Read by the packaging tools.

    python tools/scene_training_record.py OUT.json --recipe "tools/train_detector.sh (...)" \
        --render 120 --train 3600 --evaluate 40 [--set detector="..."]
"""

from __future__ import annotations

import argparse
import os

from handrecon.utils.io import atomic_write_json

SCENES = {
    "train": "handrecon synth --preset scene --image-size 288x384 --set 'num_hands=[0, 4]' --num 6000 --seed 0 "
             "--backgrounds <tools/fetch_photos.py pool> (last 500-image shard held out for validation)",
    "heldout": "the same with --num 400 --seed 1000",
    "foreign": "benchmarks/foreign_testset.py --scenes --num 200 (pyrender, scikit-image photographs)",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--recipe", required=True)
    ap.add_argument("--render", type=int, required=True, help="wall seconds")
    ap.add_argument("--train", type=int, required=True, help="wall seconds of the last training invocation(s)")
    ap.add_argument("--evaluate", type=int, required=True, help="wall seconds")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="another top-level entry")
    a = ap.parse_args()
    record = {"recipe": a.recipe, "data": SCENES,
              "wall_time_s": {"render": a.render, "train_last_invocation": a.train, "evaluate": a.evaluate},
              "threads": {"torch": int(os.environ.get("OMP_NUM_THREADS", "2")), "dataloader_workers": 1}}
    for item in a.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        record[key] = value
    atomic_write_json(a.out, record)


if __name__ == "__main__":
    main()
