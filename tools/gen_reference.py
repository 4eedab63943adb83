#!/usr/bin/env python3
"""Writes extra MViT reference cases for ethos-models' parity tests.

Each case is torchvision's `MViT` with block settings other than the shared `mvit_tiny` case
(temporal Q pooling, non-square frames so the rel-pos tables are resized at run time, grids whose
pooled size differs from torchvision's `size // stride` bookkeeping, MViTv1 flags with absolute
positions, missing pool layers), 3 classes, and the same "exercise" re-initialisation as the shared
reference (`init.rules` in case.json). Output per case, in OUT/mvit_<name>/:
  case.json           constructor arguments (torchvision names), input spec, tensor list
  weights.safetensors state_dict with torchvision key names, float32
  io.safetensors      input, logits, logits_float64 and the named intermediates

Usage: /work/pyenv/bin/python tools/gen_reference.py [OUT]   (default crates/ethos-models/tests/fixtures)
"""

import json
import math
import os
import sys

import torch
import torchvision
from safetensors.torch import save_file
from torchvision.models.video.mvit import MSBlockConfig, MViT

RULES = [
    "First the library's own init runs, right after torch.manual_seed(weight_seed).",
    "Then every parameter is overwritten: one g = torch.Generator().manual_seed(weight_seed); parameters "
    "visited in model.named_parameters() order; each draw r = torch.randn(param.shape, generator=g).",
    "rel_pos_h / rel_pos_w / rel_pos_t, class_token, spatial_pos / temporal_pos / class_pos: r * 0.02",
    "weight of nn.Linear / nn.Conv3d: r / sqrt(fan_in), fan_in = weight[0].numel()",
    "bias of nn.Linear / nn.Conv3d: r * 0.2",
    "nn.LayerNorm weight: 1 + 0.2 * r; nn.LayerNorm bias: 0.2 * r",
]


def block(heads, cin, cout, kq, kkv, sq, skv):
    return dict(num_heads=heads, input_channels=cin, output_channels=cout,
                kernel_q=kq, kernel_kv=kkv, stride_q=sq, stride_kv=skv)


V2 = dict(residual_pool=True, residual_with_cls_embed=False, rel_pos_embed=True, proj_after_attn=True)
PATCH = dict(patch_embed_kernel=[3, 7, 7], patch_embed_stride=[2, 4, 4], patch_embed_padding=[1, 3, 3])

CASES = {
    # Temporal Q pooling (stride_q t = 2), non-square frames (32 x 48 px -> 8 x 12 tokens: the rel-pos
    # tables are sized from the larger side and the other axis is interpolated), the pooling residual
    # over the class token too, a block without K/V pooling, 3 heads.
    "tpool_nonsquare": dict(
        spatial_size=[32, 48], temporal_size=8, input_shape=[1, 3, 8, 32, 48],
        block_setting=[
            block(2, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 2, 2]),
            block(2, 16, 24, [3, 3, 3], [3, 3, 3], [2, 2, 2], [1, 1, 1]),
            block(3, 24, 24, [1, 3, 3], [3, 3, 3], [1, 1, 1], [2, 2, 2]),
            block(2, 24, 32, [3, 3, 3], [1, 1, 1], [1, 2, 2], [1, 1, 1]),
        ],
        **{**V2, "residual_with_cls_embed": True}, **PATCH,
    ),
    # Odd grids: 10 frames, 40 px and a 5x5 patch kernel give 5 x 10 x 10 tokens; Q pooling by 2 yields
    # 3 x 5 x 5 while torchvision's constructor bookkeeping (size // stride) expects 2 x 5 x 5, so
    # every later block resizes its temporal (and then spatial) tables at run time. Non-square kernels.
    "odd_grid": dict(
        spatial_size=[40, 40], temporal_size=10, input_shape=[1, 3, 10, 40, 40],
        block_setting=[
            block(1, 8, 16, [3, 3, 3], [3, 3, 3], [2, 2, 2], [1, 2, 2]),
            block(2, 16, 16, [3, 1, 3], [1, 3, 3], [1, 1, 1], [1, 2, 1]),
            block(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 1, 1]),
        ],
        **V2, patch_embed_kernel=[3, 5, 5], patch_embed_stride=[2, 4, 4], patch_embed_padding=[1, 2, 2],
    ),
    # MViTv1 flags: absolute positional embeddings, no pooling residual, channel projection in the MLP
    # branch (proj_after_attn=False), stride-2 K/V pooling in time.
    "v1_flags": dict(
        spatial_size=[32, 32], temporal_size=4, input_shape=[2, 3, 4, 32, 32],
        block_setting=[
            block(1, 16, 16, [3, 3, 3], [3, 3, 3], [1, 1, 1], [2, 4, 4]),
            block(2, 16, 32, [3, 3, 3], [3, 3, 3], [1, 2, 2], [1, 2, 2]),
            block(2, 32, 32, [3, 3, 3], [3, 3, 3], [1, 1, 1], [1, 1, 1]),
        ],
        residual_pool=False, residual_with_cls_embed=True, rel_pos_embed=False, proj_after_attn=False, **PATCH,
    ),
}


def exercise_init(model, seed):
    g = torch.Generator().manual_seed(seed)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            owner_name, _, leaf = name.rpartition(".")
            owner = modules[owner_name]
            if leaf in ("rel_pos_h", "rel_pos_w", "rel_pos_t", "class_token", "spatial_pos", "temporal_pos",
                        "class_pos"):
                p.copy_(r * 0.02)
            elif isinstance(owner, (torch.nn.Linear, torch.nn.Conv3d)):
                p.copy_(r / math.sqrt(p[0].numel()) if leaf == "weight" else r * 0.2)
            elif isinstance(owner, torch.nn.LayerNorm):
                p.copy_(1 + 0.2 * r if leaf == "weight" else 0.2 * r)
            else:
                raise ValueError(f"no init rule for {name}")


def capture(model, x):
    out = {}

    def keep(name):
        def hook(_m, _inp, result):
            out[name] = (result[0] if isinstance(result, tuple) else result).detach().clone()
        return hook

    handles = [model.conv_proj.register_forward_hook(keep("conv_proj")),
               model.pos_encoding.register_forward_hook(keep("patch_embed")),
               model.norm.register_forward_hook(keep("norm"))]
    for i, blk in enumerate(model.blocks):
        handles.append(blk.register_forward_hook(keep(f"blocks.{i}")))
        handles.append(blk.attn.register_forward_hook(keep(f"blocks.{i}.attn")))
        for p in ("pool_q", "pool_k", "pool_v"):
            if getattr(blk.attn, p) is not None:
                handles.append(getattr(blk.attn, p).register_forward_hook(keep(f"blocks.{i}.attn.{p}")))
    with torch.no_grad():
        out["logits"] = model(x)
    for h in handles:
        h.remove()
    return out


def make_case(name, spec, out_dir, weight_seed=0, input_seed=1):
    spec = dict(spec)
    input_shape = spec.pop("input_shape")
    constructor = dict(spec, dropout=0.5, attention_dropout=0.0, stochastic_depth_prob=0.1, num_classes=3)
    torch.manual_seed(weight_seed)
    kwargs = dict(constructor)
    kwargs["spatial_size"] = tuple(kwargs["spatial_size"])
    kwargs["block_setting"] = [MSBlockConfig(**b) for b in kwargs["block_setting"]]
    for k in ("patch_embed_kernel", "patch_embed_stride", "patch_embed_padding"):
        kwargs[k] = tuple(kwargs[k])
    model = MViT(**kwargs).eval()
    exercise_init(model, weight_seed)
    torch.manual_seed(input_seed)
    x = torch.randn(*input_shape)
    tensors = capture(model, x)
    with torch.no_grad():
        tensors["logits_float64"] = model.double()(x.double())
    model.float()
    case_dir = os.path.join(out_dir, f"mvit_{name}")
    os.makedirs(case_dir, exist_ok=True)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(case_dir, "weights.safetensors"))
    io = {"input": x.contiguous(), **{k: v.contiguous() for k, v in tensors.items()}}
    save_file(io, os.path.join(case_dir, "io.safetensors"))
    f64_diff = {k: float((tensors[k].double() - tensors["logits_float64"]).abs().max())
                for k in ("logits",)}
    case = {
        "case": f"mvit_{name}",
        "kind": "torchvision.models.video.MViT",
        "reference": f"torch {torch.__version__}, torchvision {torchvision.__version__}, generated by tools/gen_reference.py",
        "constructor": constructor,
        "init": {"weight_seed": weight_seed, "rules": RULES},
        "mode": "eval(), torch.no_grad, float32, one intra-op thread",
        "input": {"key": "input", "shape": input_shape, "layout": "(B, C, T, H, W)", "dtype": "float32",
                  "seed": input_seed, "how": f"torch.manual_seed({input_seed}); torch.randn{tuple(input_shape)}"},
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in io.items()},
        "weights": {k: list(v.shape) for k, v in state.items()},
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "derived": {"layernorm_eps": 1e-6},
        "tolerance": {"atol": 1e-4, "rtol": 1e-4},
        "float64_max_abs_diff": f64_diff,
    }
    with open(os.path.join(case_dir, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    sizes = {f: os.path.getsize(os.path.join(case_dir, f)) for f in os.listdir(case_dir)}
    print(f"{case_dir}: {sizes}, logits {tensors['logits'].tolist()}")


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "crates", "ethos-models", "tests", "fixtures")
    for name, spec in CASES.items():
        make_case(name, spec, out_dir)


if __name__ == "__main__":
    main()
