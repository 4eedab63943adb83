"""Generates extra parity cases of the V-JEPA 2 self-supervised step under
`crates/ethos-models/tests/fixtures/ssl_vjepa2_*/` (the shared case is `shared/reference/vjepa2_ssl_tiny`).

Each case is a Hugging Face `VJEPA2Model` (encoder + predictor) with seeded random weights (the "exercise"
re-initialisation of the shared reference: Linear/Conv weights randn/sqrt(fan_in), biases 0.2*randn,
LayerNorm weight 1+0.2*randn and bias 0.2*randn, mask tokens randn), a random video and random valid mask
index lists (one context and one target list per sample and group, disjoint, rectangular; some groups in
shuffled order). One step, no optimiser update, CPU, float32, eager attention, eval mode:

- `context.g`    = the encoder on the context tokens only: transformers' patch embedding, the kept tokens,
                   its `VJEPA2Layer`s with `position_mask` = the kept indices (RoPE there), final LayerNorm;
- `prediction.g` = transformers' `VJEPA2Predictor.forward` on `context.g` (scattered to the token grid, which
                   the predictor gathers back at `context_mask.g`) with mask token 0, as V-JEPA 2's own
                   pre-training uses for every mask group of a clip length;
- `target.g`     = `F.layer_norm(encoder(all tokens))` (no affine, eps 1e-5) at `target_mask.g`, no grad;
- `loss`         = mean over groups of mean |prediction.g - target.g|; `grad.<name>` = d loss / d parameter.

Every folder gets `config.json` (save_pretrained), `weights.safetensors` (the state dict, Hugging Face names),
`io.safetensors` and `case.json`. The Rust tests (`crates/ethos-models/tests/vjepa2_ssl_parity.rs`) check
every folder; they never run Python.

Run with a Python that has torch + transformers (e.g. /work/pyenv/bin/python):
    python tools/gen_vjepa2_ssl_reference.py crates/ethos-models/tests/fixtures
Outputs are deterministic (fixed seeds).
"""

import json
import math
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from torch import nn
from transformers import VJEPA2Config, VJEPA2Model

# name -> (config overrides, input shape (B, T, C, H, W), [(context count, target count, shuffled)], what)
CASES = {
    "ssl_vjepa2_three_groups_b3": (
        dict(patch_size=4, crop_size=16, frames_per_clip=4, tubelet_size=1, hidden_size=24, num_attention_heads=2,
             num_hidden_layers=2, mlp_ratio=2.0, pred_hidden_size=16, pred_num_attention_heads=2,
             pred_num_hidden_layers=3, pred_mlp_ratio=2.0, pred_num_mask_tokens=3),
        (3, 4, 3, 16, 16),
        [(20, 30, False), (40, 24, False), (9, 50, True)],
        "batch 3, three mask groups (one in shuffled order), patch 4, tubelet 1, 4x4x4 grid; encoder head_dim 12 "
        "(RoPE 4+4+4), predictor 3 blocks of width 16, head_dim 8 (RoPE 2+2+2, 2 untouched), 3 mask tokens",
    ),
    "ssl_vjepa2_odd_geometry": (
        dict(patch_size=6, crop_size=24, frames_per_clip=6, tubelet_size=3, hidden_size=18, num_attention_heads=2,
             num_hidden_layers=2, mlp_ratio=2.5, qkv_bias=False, pred_hidden_size=20, pred_num_attention_heads=4,
             pred_num_hidden_layers=1, pred_mlp_ratio=3.0, pred_num_mask_tokens=1, layer_norm_eps=1e-5),
        (2, 7, 3, 24, 24),
        [(7, 19, False), (25, 6, True)],
        "patch 6, crop 24, tubelet 3, 7 frames (the 7th dropped by the conv): a 2x4x4 grid; encoder head_dim 9 "
        "(odd: RoPE 2+2+2, 3 untouched), no q/k/v bias, mlp_ratio 2.5 (MLP 45); predictor head_dim 5 (no rotated "
        "channels), 1 block, one mask token; layer_norm_eps 1e-5",
    ),
    "ssl_vjepa2_wide_predictor": (
        dict(patch_size=4, crop_size=8, frames_per_clip=4, tubelet_size=2, hidden_size=16, num_attention_heads=1,
             num_hidden_layers=1, pred_hidden_size=24, pred_num_attention_heads=2, pred_num_hidden_layers=2,
             pred_mlp_ratio=1.5, pred_num_mask_tokens=2),
        (3, 6, 3, 12, 12),
        [(5, 12, False)],
        "predictor wider (24, 2 heads of 12) than the encoder (16, one head of 16: RoPE 4+4+4, 4 untouched); "
        "12x12 input on a crop-8 patch-4 config (a 3x3x3 grid, RoPE positions from the config grid of 2); one group",
    ),
}

WEIGHT_SEED = 0
INPUT_SEED = 1
MASK_SEED = 2


def exercise_init(model, seed):
    """Overwrites every parameter as the shared reference's init rules describe."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            r = torch.randn(param.shape, generator=g)
            owner_name, _, leaf = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            if leaf == "mask_tokens":
                param.copy_(r)
            elif isinstance(owner, (nn.Linear, nn.Conv3d)):
                if leaf == "weight":
                    param.copy_(r / math.sqrt(param[0].numel()))
                else:
                    param.copy_(r * 0.2)
            elif isinstance(owner, nn.LayerNorm):
                param.copy_(1 + 0.2 * r if leaf == "weight" else 0.2 * r)
            else:
                raise SystemExit(f"no init rule for {name} ({type(owner).__name__})")


def make_masks(batch, tokens, groups, seed):
    """Disjoint context / target index lists per sample and group (ascending unless `shuffled`)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for n_ctx, n_tgt, shuffled in groups:
        if n_ctx + n_tgt > tokens:
            raise SystemExit(f"{n_ctx} + {n_tgt} indices do not fit {tokens} tokens")
        ctx_rows, tgt_rows = [], []
        for _ in range(batch):
            perm = torch.randperm(tokens, generator=g)
            ctx, tgt = perm[:n_ctx], perm[n_ctx:n_ctx + n_tgt]
            if not shuffled:
                ctx, tgt = ctx.sort().values, tgt.sort().values
            ctx_rows.append(ctx)
            tgt_rows.append(tgt)
        out.append((torch.stack(ctx_rows).long(), torch.stack(tgt_rows).long()))
    return out


def context_encoder(encoder, pixels, ctx):
    """transformers' encoder modules on the kept tokens only, RoPE at the kept positions."""
    x = encoder.embeddings(pixels)
    x = torch.gather(x, 1, ctx.unsqueeze(-1).expand(-1, -1, x.size(-1)))
    for layer in encoder.layer:
        x = layer(x, ctx)[0]
    return encoder.layernorm(x)


def run_case(out_dir, name, overrides, input_shape, groups, what):
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    config = VJEPA2Config(**overrides)
    config._attn_implementation = "eager"
    torch.manual_seed(WEIGHT_SEED)
    model = VJEPA2Model(config).eval()
    exercise_init(model, WEIGHT_SEED)

    # V-JEPA 2's pre-training predicts every group of a clip length with mask token 0; transformers'
    # predictor defaults to 1, so its embeddings are called with index 0 here.
    embeddings = model.predictor.embeddings
    embeddings_forward = embeddings.forward
    embeddings.forward = lambda *a, **k: embeddings_forward(*a, mask_index=0, **k)

    torch.manual_seed(INPUT_SEED)
    pixels = torch.randn(*input_shape)
    batch = input_shape[0]
    with torch.no_grad():
        full = model.encoder(pixels).last_hidden_state
    tokens, width = full.shape[1], full.shape[2]
    masks = make_masks(batch, tokens, groups, MASK_SEED)

    normed = F.layer_norm(full, (width,))
    io = {"pixel_values_videos": pixels, "target_encoder.last_hidden_state": full}
    loss = 0.0
    for gi, (ctx, tgt) in enumerate(masks):
        context = context_encoder(model.encoder, pixels, ctx)
        # The predictor gathers its context at `context_mask` from a full token grid.
        on_grid = torch.zeros(batch, tokens, width).scatter(1, ctx.unsqueeze(-1).expand(-1, -1, width), context)
        prediction = model.predictor(encoder_hidden_states=on_grid, context_mask=[ctx],
                                     target_mask=[tgt]).last_hidden_state
        target = torch.gather(normed, 1, tgt.unsqueeze(-1).expand(-1, -1, width))
        loss = loss + torch.mean(torch.abs(prediction - target))
        io.update({f"context_mask.{gi}": ctx, f"target_mask.{gi}": tgt, f"context.{gi}": context,
                   f"prediction.{gi}": prediction, f"target.{gi}": target})
    loss = loss / len(masks)
    loss.backward()
    loss = loss.detach()
    io["loss"] = loss
    for pname, param in model.named_parameters():
        io[f"grad.{pname}"] = param.grad if param.grad is not None else torch.zeros_like(param)
    io = {k: v.detach().contiguous() for k, v in io.items()}

    config.save_pretrained(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, "weights.safetensors"))
    save_file(io, os.path.join(folder, "io.safetensors"))
    case = {
        "case": name,
        "kind": "transformers.VJEPA2Model, one self-supervised step (no optimiser update)",
        "what": what,
        "generator": "tools/gen_vjepa2_ssl_reference.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "mode": "eval(), float32, attn_implementation='eager', CPU",
        "init": f"torch.manual_seed({WEIGHT_SEED}) + the exercise re-init of the shared reference",
        "input": {"shape": list(input_shape), "how": f"torch.manual_seed({INPUT_SEED}); torch.randn(shape)"},
        "masks": [{"context": c, "target": t, "shuffled": s} for c, t, s in groups],
        "loss": float(loss),
        "tensors": {k: list(v.shape) for k, v in io.items() if not k.startswith("grad.")},
        "tolerance": {"atol": 1e-4, "rtol": 1e-4},
    }
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"{name}: {size / 1024:.0f} KiB, loss {float(loss):.6f}")
    return size


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    total = sum(run_case(sys.argv[1], name, *spec) for name, spec in CASES.items())
    print(f"total {total / 1024:.0f} KiB")
    if total >= 1 << 20:
        raise SystemExit(f"fixtures total {total} bytes, over 1 MiB")


if __name__ == "__main__":
    main()
