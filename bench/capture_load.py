"""How long it takes to get a capture into memory: the synthetic default and the real axe.

    python bench/capture_load.py [--quick]

Prints one line per measurement and, last, one JSON object with the figures (seconds).
The synthetic capture is rendered from scratch each repeat (its in-process cache is cleared).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from splatcourse.capture import COURSE_CAPTURE, find_capture, load_capture
from splatcourse.capture import synthetic as syn


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one repeat, smaller sizes")
    args = ap.parse_args()
    repeats = 1 if args.quick else 3
    print(f"torch threads: {torch.get_num_threads()}, repeats: {repeats} (best kept)")
    figures: dict[str, float | None] = {}

    def synthetic(width: int) -> None:
        syn._render_all.cache_clear()
        load_capture("default", width=width, verbose=False)

    for width in (64,) if args.quick else (128, 256):
        s = best_of(lambda w=width: synthetic(w), repeats)
        figures[f"synthetic_{width}_s"] = round(s, 3)
        print(f"synthetic capture, 50 views at {width}x{width * 3 // 4}: {s:.2f} s")

    if find_capture(COURSE_CAPTURE) is None:
        print(f"{COURSE_CAPTURE}: not found, skipped")
        figures["axe_256_s"] = figures["axe_512_s"] = None
    else:
        for width in (256,) if args.quick else (256, 512):
            s = best_of(
                lambda w=width: load_capture(COURSE_CAPTURE, width=w, verbose=False), repeats
            )
            figures[f"axe_{width}_s"] = round(s, 3)
            n_views = len(load_capture(COURSE_CAPTURE, width=width, verbose=False))
            print(f"{COURSE_CAPTURE}, {n_views} views at width {width}: {s:.2f} s")
        if figures.get("axe_512_s"):
            print(
                f"full / course resolution load time: {figures['axe_512_s'] / figures['axe_256_s']:.2f}x"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
