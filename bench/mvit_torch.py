#!/usr/bin/env python3
"""PyTorch side of `ethos bench model --arch mvit --preset mvit_v2_s`: the same measurements with
torchvision's mvit_v2_s (random weights), for a side-by-side ratio on the same machine and threads.

  forward_s     : model.eval(), torch.no_grad(), one forward of (B, 3, T, S, S) random input
  train_step_s  : model.train(), forward + cross-entropy (labels 0) + backward + zeroing the grads

Both are medians over --reps timed repetitions after --warmup untimed ones. JSON goes to stdout.

--save-case DIR also writes a parity case for mvit_v2_s: weights.safetensors (torchvision keys, the
exercise re-init of tools/gen_reference.py), io.safetensors (`input` 1x3xTxSxS, `logits` and the named
intermediates), to check with
  ethos model forward --arch mvit --preset mvit_v2_s --weights DIR/weights.safetensors \
      --input DIR/io.safetensors --output OUT.safetensors
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torchvision


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", default="1", help="comma-separated batch sizes")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--num-classes", type=int, default=400)
    ap.add_argument("--forward-only", action="store_true")
    ap.add_argument("--save-case", default=None, help="write a parity case to this folder and exit")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = torchvision.models.video.mvit_v2_s(num_classes=args.num_classes).to(device)

    if args.save_case:
        save_case(model, args)
        return

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def timed(fn):
        for _ in range(args.warmup):
            fn()
        sync()
        out = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
        return out

    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {torch.get_num_threads()} threads, "
          f"input (3, {args.frames}, {args.size}, {args.size}), {args.reps} reps (median), {args.warmup} warm-up",
          file=sys.stderr)
    results = []
    for b in [int(x) for x in args.batch.split(",")]:
        x = torch.randn(b, 3, args.frames, args.size, args.size, device=device)
        model.eval()

        def fwd():
            with torch.no_grad():
                model(x)

        f = timed(fwd)
        row = {"batch": b, "forward_s": statistics.median(f), "forward_all_s": f}
        print(f"B={b}: forward (eval, no_grad) median {row['forward_s']:.3f} s {[round(v, 3) for v in f]}",
              file=sys.stderr)
        if not args.forward_only:
            labels = torch.zeros(b, dtype=torch.long, device=device)
            model.train()

            def step():
                loss = torch.nn.functional.cross_entropy(model(x), labels)
                loss.backward()
                model.zero_grad(set_to_none=False)

            t = timed(step)
            row["train_step_s"] = statistics.median(t)
            row["train_step_all_s"] = t
            print(f"B={b}: forward+backward (train) median {row['train_step_s']:.3f} s {[round(v, 3) for v in t]}",
                  file=sys.stderr)
        results.append(row)
    print(json.dumps({"framework": "pytorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "device": str(device), "input_per_sample": [3, args.frames, args.size, args.size],
                      "reps": args.reps, "results": results}, indent=2))


def save_case(model, args):
    from safetensors.torch import save_file

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    from gen_reference import capture, exercise_init

    os.makedirs(args.save_case, exist_ok=True)
    model = model.cpu().eval()
    exercise_init(model, 0)
    torch.manual_seed(1)
    x = torch.randn(1, 3, args.frames, args.size, args.size)
    t0 = time.perf_counter()
    tensors = capture(model, x)
    print(f"torchvision forward {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              os.path.join(args.save_case, "weights.safetensors"))
    save_file({"input": x, **{k: v.contiguous() for k, v in tensors.items()}},
              os.path.join(args.save_case, "io.safetensors"))
    print(json.dumps({"case": args.save_case, "logits_first5": tensors["logits"][0, :5].tolist()}))


if __name__ == "__main__":
    main()
