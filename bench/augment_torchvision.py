"""Side-by-side baseline for `ethos bench loader` (b): the same training augmentation done with
torchvision transforms v2 on the same uint8 input.

Input: the cached clip `ethos bench loader` dumps (`clip_u8.bin` raw uint8 (T, H, W, 3) and
`clip_u8.json` with its shape, N and the margin M). Per sample: a random whole-frame temporal
offset in [-M, M] (slice of N frames), RandomResizedCrop(224, scale (0.7, 1), ratio (3/4, 4/3),
antialias) -> RandomHorizontalFlip(0.5) -> TrivialAugmentWide -> float32 scaled to [0, 1] ->
Normalize(0.45, 0.225), one parameter set per clip (a tv_tensors.Video), output (C, T, H, W)
contiguous and stacked into batches. One intra-op thread per process (per core), as a DataLoader
worker would use.

Usage: python bench/augment_torchvision.py WORKDIR [--samples 192] [--reps 3] [--batch-size 8]
Prints a JSON line with samples per second (wall) and per CPU-second (single process, one thread).
"""

import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("work", type=pathlib.Path)
    ap.add_argument("--samples", type=int, default=192)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    torch.set_num_threads(1)
    meta = json.loads((args.work / "clip_u8.json").read_text())
    t, h, w, c = meta["shape"]
    n, m = meta["num_frames"], meta["margin"]
    clip = torch.from_numpy(np.fromfile(args.work / "clip_u8.bin", dtype=np.uint8).reshape(t, h, w, c))
    clip = clip.permute(0, 3, 1, 2)  # (T, C, H, W) view, as a decoded video tensor is laid out
    transform = v2.Compose(
        [
            v2.RandomResizedCrop(args.size, scale=(0.7, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
            v2.RandomHorizontalFlip(0.5),
            v2.TrivialAugmentWide(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.45] * 3, std=[0.225] * 3),
        ]
    )
    gen = torch.Generator().manual_seed(0)

    def one_sample() -> torch.Tensor:
        j = int(torch.randint(-m, m + 1, (1,), generator=gen))
        video = tv_tensors.Video(clip[m + j : m + j + n].contiguous())
        out = transform(video)  # (T, C, S, S)
        return out.permute(1, 0, 2, 3).contiguous()  # (C, T, S, S)

    for _ in range(args.batch_size):  # warm-up
        one_sample()
    rates, cpu_rates = [], []
    for _ in range(args.reps):
        c0 = time.process_time()
        t0 = time.perf_counter()
        done = 0
        while done < args.samples:
            k = min(args.batch_size, args.samples - done)
            batch = torch.stack([one_sample() for _ in range(k)])
            assert batch.shape == (k, 3, n, args.size, args.size)
            done += k
        rates.append(args.samples / (time.perf_counter() - t0))
        cpu_rates.append(args.samples / (time.process_time() - c0))
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "input_shape": [t, h, w, c],
                "samples": args.samples,
                "threads": 1,
                "samples_per_s_median": statistics.median(rates),
                "samples_per_s": rates,
                "samples_per_cpu_s_median": statistics.median(cpu_rates),
            }
        )
    )


if __name__ == "__main__":
    main()
