"""Generates extra V-JEPA 2 parity fixtures under `crates/ethos-models/tests/fixtures/vjepa2_*/`.

Each case is a Hugging Face `VJEPA2ForVideoClassification` with seeded random weights (the same
"exercise" re-initialisation as `shared/reference/vjepa2_tiny/case.json` `init.rules`), evaluated on CPU in
float32, eval mode, eager attention. Every folder gets `config.json` (save_pretrained), `weights.safetensors`
(the state dict, Hugging Face key names), `io.safetensors` (`input` + the named intermediates) and a short
`case.json`. The Rust parity test (`crates/ethos-models/tests/vjepa2_parity.rs`) checks every folder; it
never runs Python.

Run with a Python that has torch + transformers (e.g. /work/pyenv/bin/python):
    python tools/gen_vjepa2_reference.py crates/ethos-models/tests/fixtures
Outputs are deterministic (fixed seeds).
"""

import json
import math
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from torch import nn
from transformers import VJEPA2Config, VJEPA2ForVideoClassification

# name -> (config overrides, input shape (B, T, C, H, W), what the case exercises)
SMALL_PREDICTOR = dict(pred_hidden_size=12, pred_num_attention_heads=2, pred_num_hidden_layers=1, pred_num_mask_tokens=2)
CASES = {
    "vjepa2_deep_3labels": (
        dict(patch_size=4, crop_size=16, frames_per_clip=3, tubelet_size=1, hidden_size=48, num_attention_heads=4,
             num_hidden_layers=4, mlp_ratio=2.5, num_pooler_layers=1, num_labels=3, **SMALL_PREDICTOR),
        (2, 3, 3, 16, 16),
        "4 blocks, mlp_ratio 2.5 (MLP 120), patch 4, tubelet 1, head_dim 12 (RoPE 4+4+4, no tail), "
        "1 pooler layer, 3 labels",
    ),
    "vjepa2_odd_head": (
        dict(patch_size=6, crop_size=24, frames_per_clip=6, tubelet_size=3, hidden_size=60, num_attention_heads=4,
             num_hidden_layers=2, mlp_ratio=4.1, qkv_bias=False, num_pooler_layers=1,
             id2label={0: "ear", 1: "tail", 2: "other"}, **SMALL_PREDICTOR),
        (1, 7, 3, 24, 24),
        "head_dim 15 (odd: RoPE 4+4+4, 3 channels untouched), mlp_ratio 4.1 -> int(245.99999999999997) = 245, "
        "no q/k/v bias, patch 6, tubelet 3, 7 frames (the 7th is dropped by the conv), 3 named labels",
    ),
    "vjepa2_vitl_head_geometry": (
        dict(patch_size=8, crop_size=32, frames_per_clip=8, tubelet_size=2, hidden_size=64, num_attention_heads=1,
             num_hidden_layers=1, mlp_ratio=2.0, num_pooler_layers=1, num_labels=2, **SMALL_PREDICTOR),
        (1, 8, 3, 32, 32),
        "one head of width 64 like ViT-L's heads (RoPE 20+20+20, 4 untouched), 64 tokens over 4 time steps",
    ),
    "vjepa2_input_edge": (
        dict(patch_size=8, crop_size=32, frames_per_clip=4, tubelet_size=2, hidden_size=32, num_attention_heads=2,
             num_hidden_layers=2, mlp_ratio=4.0, num_pooler_layers=1, num_labels=2, **SMALL_PREDICTOR),
        (2, 1, 3, 40, 40),
        "1 frame < tubelet 2 (repeated along T) and 40x40 > crop_size 32 (5x5 patches, RoPE positions still "
        "from the config grid of 4)",
    ),
}

WEIGHT_SEED = 0
INPUT_SEED = 1


def exercise_init(model, seed):
    """Overwrites every parameter as shared/reference/vjepa2_tiny/case.json init.rules describe."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            r = torch.randn(param.shape, generator=g)
            owner_name, _, leaf = name.rpartition(".")
            owner = model.get_submodule(owner_name)
            if leaf in ("query_tokens", "mask_tokens"):
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


def run_case(out_dir, name, overrides, input_shape, what):
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    config = VJEPA2Config(**overrides)
    config._attn_implementation = "eager"
    torch.manual_seed(WEIGHT_SEED)
    model = VJEPA2ForVideoClassification(config).eval()
    exercise_init(model, WEIGHT_SEED)

    captured = {}

    def keep(key, index=None):
        def hook(_module, _inputs, output):
            captured[key] = (output[index] if index is not None else output).detach().clone()

        return hook

    enc = model.vjepa2.encoder
    enc.embeddings.register_forward_hook(keep("encoder.embeddings"))
    for i, layer in enumerate(enc.layer):
        layer.register_forward_hook(keep(f"encoder.layer.{i}", 0))
    enc.layernorm.register_forward_hook(keep("encoder.last_hidden_state"))
    for i, layer in enumerate(model.pooler.self_attention_layers):
        layer.register_forward_hook(keep(f"pooler.self_attention_layers.{i}", 0))
    model.pooler.cross_attention_layer.register_forward_hook(keep("pooler.cross_attention_layer", 0))
    model.pooler.register_forward_hook(keep("pooler_output"))

    torch.manual_seed(INPUT_SEED)
    pixels = torch.randn(*input_shape)
    with torch.no_grad():
        logits = model(pixel_values_videos=pixels).logits
    io = {"input": pixels.contiguous(), "logits": logits.contiguous()}
    io.update({k: v.contiguous() for k, v in captured.items()})

    config.save_pretrained(folder)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, os.path.join(folder, "weights.safetensors"))
    save_file(io, os.path.join(folder, "io.safetensors"))
    case = {
        "case": name,
        "kind": "transformers.VJEPA2ForVideoClassification",
        "what": what,
        "generator": "tools/gen_vjepa2_reference.py",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "mode": "eval(), torch.no_grad, float32, attn_implementation='eager', CPU",
        "init": f"torch.manual_seed({WEIGHT_SEED}) + the exercise re-init of vjepa2_tiny case.json init.rules",
        "input": {"shape": list(input_shape), "how": f"torch.manual_seed({INPUT_SEED}); torch.randn(shape)"},
        "tensors": {k: list(v.shape) for k, v in io.items()},
        "tolerance": {"atol": 1e-4, "rtol": 1e-4},
    }
    with open(os.path.join(folder, "case.json"), "w") as f:
        json.dump(case, f, indent=2)
        f.write("\n")
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    if size >= 1 << 20:
        raise SystemExit(f"{name}: fixture is {size} bytes, over 1 MiB")
    print(f"{name}: {size / 1024:.0f} KiB, logits {tuple(logits.shape)}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    for name, (overrides, input_shape, what) in CASES.items():
        run_case(sys.argv[1], name, overrides, input_shape, what)


if __name__ == "__main__":
    main()
