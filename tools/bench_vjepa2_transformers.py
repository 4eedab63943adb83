"""The PyTorch/transformers side of `cargo bench -p ethos-models --bench vjepa2_step`.

Same step: VJEPA2ForVideoClassification in train mode (SDPA attention), the patch embedding and the first
`--freeze` encoder blocks frozen (requires_grad False), cross-entropy, backward, AdamW over the trainable
parameters. Prints one JSON line (median step time, parameter counts, peak RSS).

    /work/pyenv/bin/python tools/bench_vjepa2_transformers.py [--hidden 384] [--heads 6] [--layers 12]
        [--freeze 6] [--batch 2] [--frames 16] [--size 128] [--patch 16] [--iters 5] [--warmup 2]
        [--threads N] [--cuda]
"""

import argparse
import json
import resource
import time

import torch
from transformers import VJEPA2Config, VJEPA2ForVideoClassification


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("hidden", 384), ("heads", 6), ("layers", 12), ("freeze", 6), ("batch", 2),
                          ("frames", 16), ("size", 128), ("patch", 16), ("iters", 5), ("warmup", 2)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--cuda", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.cuda else "cpu")
    cfg = VJEPA2Config(hidden_size=a.hidden, num_attention_heads=a.heads, num_hidden_layers=a.layers,
                       patch_size=a.patch, crop_size=a.size, frames_per_clip=a.frames, tubelet_size=2, num_labels=2)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    model = VJEPA2ForVideoClassification(cfg).to(device).train()
    del model.vjepa2.predictor  # never run by the classifier; the Rust port does not build it either
    frozen = [model.vjepa2.encoder.embeddings] + list(model.vjepa2.encoder.layer[: a.freeze])
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_train = sum(p.numel() for p in trainable)
    n_frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    x = torch.randn(a.batch, a.frames, 3, a.size, a.size, device=device)
    labels = torch.zeros(a.batch, dtype=torch.long, device=device)
    times = []
    for step in range(a.warmup + a.iters):
        start = time.perf_counter()
        logits = model(pixel_values_videos=x).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if a.cuda:
            torch.cuda.synchronize()
        if step >= a.warmup:
            times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    tokens = (a.frames // 2) * (a.size // a.patch) ** 2
    print(json.dumps({
        "bench": "vjepa2_step (pytorch/transformers)",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "config": {"hidden": a.hidden, "heads": a.heads, "layers": a.layers, "freeze": a.freeze, "batch": a.batch,
                   "frames": a.frames, "size": a.size, "patch": a.patch, "tokens": tokens},
        "trainable_params": n_train,
        "frozen_params": n_frozen,
        "step_ms_median": times[len(times) // 2],
        "step_ms": times,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if a.cuda else None,
    }))


if __name__ == "__main__":
    main()
