"""Where the copy-detection thresholds come from: thumbnail distances between honest variants and
copies of the tiny-Flux baseline, over generated prompts. Run by hand (not a test):

    .venv/bin/python bench/copy_distances.py [--prompts 300] [--out docs/bench-results/copy-distances.json]

Honest variants (each deviates from the baseline in its own way): A = the pipeline under bf16
autocast, B = three denoising steps, C = five. Copies of A: A + uniform noise of ±3 levels,
A re-encoded as JPEG q90, A brightened by 4 levels. For each pair it reports the per-input ratio
d(x, y) / min(d(x, baseline), d(y, baseline)) that scoring/copies.py compares with COPY_RATIO, and
how many honest pairs would be flagged (the false-positive rate).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import statistics
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from PIL import Image

from edgemaxx.contest import example_path
from edgemaxx.inputs import prompt_list
from scoring.copies import COPY_INPUTS, COPY_RATIO, MIN_DEVIATION, thumbnail, thumbnail_distance

SIZE = 128
HONEST = [("A", "B"), ("A", "C"), ("B", "C")]
COPIES = [("A_noise", "A"), ("A_jpeg", "A"), ("A_bright", "A")]


def _pipeline_module() -> ModuleType:
    path = example_path("flux-baseline") / "src" / "pipeline.py"
    spec = importlib.util.spec_from_file_location("baseline_pipeline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _jpeg(pixels: np.ndarray, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def generate(count: int) -> dict[str, list[bytes]]:
    pipe = _pipeline_module().load_pipeline()
    pipe.set_progress_bar_config(disable=True)

    def image(prompt: str, seed: int, steps: int = 4, autocast: bool = False) -> bytes:
        generator = torch.Generator("cpu").manual_seed(seed)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = pipe(prompt, generator=generator, guidance_scale=0.0, num_inference_steps=steps,
                       max_sequence_length=256, height=SIZE, width=SIZE).images[0]
        return _jpeg(np.asarray(out))

    rng = np.random.default_rng(0)
    outputs: dict[str, list[bytes]] = {k: [] for k in ("base", "A", "B", "C", "A_noise", "A_jpeg", "A_bright")}
    for index, prompt in enumerate(prompt_list("copy-distances", count)):
        seed = 1000 + index
        outputs["base"].append(image(prompt, seed))
        a = image(prompt, seed, autocast=True)
        outputs["A"].append(a)
        outputs["B"].append(image(prompt, seed, steps=3))
        outputs["C"].append(image(prompt, seed, steps=5))
        pixels = np.asarray(Image.open(io.BytesIO(a)).convert("RGB"), dtype=np.int16)
        outputs["A_noise"].append(_jpeg(pixels + rng.integers(-3, 4, pixels.shape)))
        outputs["A_jpeg"].append(_jpeg(pixels, 90))
        outputs["A_bright"].append(_jpeg(pixels + 4))
    return outputs


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 4), "p5": round(ordered[len(ordered) // 20], 4),
            "p95": round(ordered[len(ordered) * 19 // 20], 4), "min": round(ordered[0], 4),
            "max": round(ordered[-1], 4)}


def analyse(outputs: dict[str, list[bytes]]) -> dict[str, Any]:
    thumbs = {name: [thumbnail(x) for x in images] for name, images in outputs.items()}
    count = len(outputs["base"])

    def d(x: str, y: str, i: int) -> float:
        a, b = thumbs[x][i], thumbs[y][i]
        assert a is not None and b is not None
        return thumbnail_distance(a, b)

    report: dict[str, Any] = {"deviation_from_baseline": {}, "pairs": {}}
    for name in ("A", "B", "C", "A_noise", "A_jpeg", "A_bright"):
        report["deviation_from_baseline"][name] = _summary([d(name, "base", i) for i in range(count)])
    for x, y in HONEST + COPIES:
        ratios, flagged_inputs = [], 0
        for i in range(count):
            deviation = min(d(x, "base", i), d(y, "base", i))
            if deviation < MIN_DEVIATION:
                continue
            ratio = d(x, y, i) / deviation
            ratios.append(ratio)
            flagged_inputs += ratio < COPY_RATIO
        # A contest run compares 12 inputs at a time: how many 12-input windows would be flagged.
        windows = [ratios[i:i + 12] for i in range(0, len(ratios) - 11, 12)]
        flagged_windows = sum(sum(r < COPY_RATIO for r in w) >= COPY_INPUTS * len(w) for w in windows)
        report["pairs"][f"{x}~{y}"] = {"kind": "honest" if (x, y) in HONEST else "copy",
                                       "ratio": _summary(ratios), "inputs": len(ratios),
                                       "inputs_under_threshold": flagged_inputs,
                                       "runs_of_12": len(windows), "runs_flagged": flagged_windows}
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("docs/bench-results/copy-distances.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    report = analyse(generate(args.prompts))
    report.update({"prompts": args.prompts, "size": SIZE, "copy_ratio": COPY_RATIO, "copy_inputs": COPY_INPUTS,
                   "min_deviation": MIN_DEVIATION, "seconds": round(time.perf_counter() - started, 1)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print("| pair | kind | ratio median | p5 | p95 | min | max | inputs < threshold | runs flagged |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for pair, row in report["pairs"].items():
        r = row["ratio"]
        print(f"| {pair} | {row['kind']} | {r['median']} | {r['p5']} | {r['p95']} | {r['min']} | {r['max']} | "
              f"{row['inputs_under_threshold']}/{row['inputs']} | {row['runs_flagged']}/{row['runs_of_12']} |")


if __name__ == "__main__":
    main()
