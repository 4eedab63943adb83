"""Checks that a V-JEPA 2 folder exported by ethos (`config.json` + `model.safetensors`, `encoder.*` and
`predictor.*` keys) loads in Hugging Face transformers with nothing missing or unexpected, that the loaded
parameters equal the file's tensors exactly, and that `VJEPA2Model` runs on it (encoder + predictor).

Make a folder with the Rust export test and check it (a Python with torch + transformers, e.g. /work/pyenv):
    ETHOS_SSL_EXPORT_DIR=/tmp/vjepa2_export cargo nextest run -p ethos-models export_has_the_hugging_face_keys
    /work/pyenv/bin/python tools/check_vjepa2_hf_export.py /tmp/vjepa2_export
Exits 0 and prints one summary line when every check passes.
"""

import os
import sys

import torch
from safetensors.torch import load_file
from transformers import VJEPA2Model


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    folder = sys.argv[1]
    model, info = VJEPA2Model.from_pretrained(folder, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    if problems:
        raise SystemExit(f"{folder}: loading problems: {problems}")
    stored = load_file(os.path.join(folder, "model.safetensors"))
    state = model.state_dict()
    if set(stored) != set(state):
        raise SystemExit(f"key sets differ: file-only {set(stored) - set(state)}, model-only {set(state) - set(stored)}")
    for key, tensor in stored.items():
        if not torch.equal(state[key], tensor):
            raise SystemExit(f"{key}: loaded parameter differs from the file")
    cfg = model.config
    frames, size = cfg.frames_per_clip, cfg.crop_size
    model.eval()
    with torch.no_grad():
        out = model(pixel_values_videos=torch.randn(1, frames, cfg.in_chans, size, size))
    tokens = out.last_hidden_state.shape[1]
    pred = out.predictor_output.last_hidden_state
    if not torch.isfinite(pred).all():
        raise SystemExit("predictor output is not finite")
    print(f"{folder}: VJEPA2Model.from_pretrained OK: {len(stored)} tensors equal, "
          f"encoder tokens {tokens}, predictor output {tuple(pred.shape)}")


if __name__ == "__main__":
    main()
