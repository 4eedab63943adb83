"""Generates the small weight-import and R3D-18 parity fixtures of `crates/ethos-models/tests/fixtures/`.

Run with a Python that has torch + torchvision (e.g. /work/pyenv/bin/python):
    python tools/gen_weights_fixtures.py crates/ethos-models/tests/fixtures
Outputs are deterministic (fixed seeds); the Rust tests never need Python.
"""

import collections
import io
import math
import os
import pickle
import sys
import zipfile

import torch
import torchvision
from safetensors.torch import save_file


def pth_fixtures(out):
    g = torch.Generator().manual_seed(1234)
    base = torch.randn(4, 6, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 5, generator=g)
    sd["f64"] = torch.randn(2, 3, generator=g, dtype=torch.float64)
    sd["f16"] = torch.randn(7, generator=g).half()
    sd["bf16"] = torch.randn(2, 2, 2, generator=g).bfloat16()
    sd["i64"] = torch.arange(-5, 5, dtype=torch.int64)
    sd["i32"] = torch.arange(0, 6, dtype=torch.int32).reshape(2, 3)
    sd["u8"] = torch.arange(250, 256, dtype=torch.uint8)
    sd["i8"] = torch.tensor([-128, -1, 0, 127], dtype=torch.int8)
    sd["i16"] = torch.tensor([-300, 0, 300], dtype=torch.int16)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar_i64"] = torch.tensor(7, dtype=torch.int64)
    # Views sharing one storage: transposed (non-contiguous), offset slice, strided column.
    sd["view_t"] = base.t()
    sd["view_offset"] = base[1:3, 2:5]
    sd["view_col"] = base[:, 4]
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 4, generator=g))
    torch.save(sd, os.path.join(out, "plain.pth"))
    # A model state dict (OrderedDict with _metadata) nested under "state_dict", with other entries.
    lin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    torch.manual_seed(5)
    lin[0].reset_parameters()
    ckpt = {"epoch": 3, "best_f1": 0.75, "arch": "tiny", "flags": [True, None, (1, 2.5)],
            "state_dict": lin.state_dict()}
    torch.save(ckpt, os.path.join(out, "nested.pth"))
    torch.save({"model": lin.state_dict()}, os.path.join(out, "nested_model.pth"))
    # The legacy (pre-1.6, non-zip) format, as used by older torchvision weight files.
    torch.save(sd, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)
    # The zip's top-level folder renamed (older torch used the file stem, not "archive").
    buf = io.BytesIO()
    torch.save(sd, buf)
    src = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    with zipfile.ZipFile(os.path.join(out, "renamed_root.pth"), "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            name = info.filename.split("/", 1)[1]
            dst.writestr("my_model-0123abcd/" + name, src.read(info.filename))
    # Expected values (float32/int64 contiguous copies) for the Rust test.
    exp = {}
    for k, v in sd.items():
        v = v.detach().contiguous()
        if v.dtype in (torch.float16, torch.bfloat16, torch.float64):
            v = v.float()
        if v.dtype in (torch.int32, torch.uint8, torch.int8, torch.int16, torch.bool):
            v = v.to(torch.int64)
        exp[k] = v.clone()
    for k, v in lin.state_dict().items():
        exp["lin." + k] = v.detach().float().contiguous().clone() if v.is_floating_point() else v.clone()
    save_file(exp, os.path.join(out, "expected.safetensors"))
    malicious(out)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch ETHOS_PWNED_MARKER",))


def malicious(out):
    """A torch-style zip whose data.pkl calls os.system. Generated without running it."""
    for proto, name in ((2, "malicious.pth"), (4, "malicious_p4.pth")):
        payload = pickle.dumps({"weight": _Evil()}, protocol=proto)
        assert b"system" in payload
        with zipfile.ZipFile(os.path.join(out, name), "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", payload)
            z.writestr("archive/version", "3\n")


def formula_seed(key):
    return sum((j + 1) * b for j, b in enumerate(key.encode())) % 1000 * 0.01


def formula_fill(key, shape, kind):
    """Deterministic weights (reproduced in Rust by `r3d` tests): sin(0.731*i + s(key)) shaped per kind."""
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.float64)
    s = formula_seed(key)
    w = torch.sin(0.731 * i + s)
    if kind == "weight_conv":
        fan_in = n // shape[0]
        w = w / math.sqrt(fan_in)
    elif kind == "bn_weight":
        w = 1.0 + 0.2 * w
    elif kind == "bias":
        w = 0.2 * w
    elif kind == "running_mean":
        w = 0.1 * w
    elif kind == "running_var":
        w = 1.0 + 0.5 * w * w
    return w.reshape(shape).float()


def r3d_kind(key, shape):
    if key.endswith("running_mean"):
        return "running_mean"
    if key.endswith("running_var"):
        return "running_var"
    if key.endswith("bias"):
        return "bias"
    if key.endswith("weight") and len(shape) == 1:
        return "bn_weight"
    return "weight_conv"


def r3d_fixture(out):
    torch.set_num_threads(1)
    m = torchvision.models.video.r3d_18(weights=None).eval()
    sd = m.state_dict()
    for k, v in sd.items():
        if v.dtype == torch.int64:
            continue
        sd[k] = formula_fill(k, list(v.shape), r3d_kind(k, list(v.shape)))
    m.load_state_dict(sd)
    torch.manual_seed(7)
    x = torch.randn(2, 3, 4, 16, 20)
    named = {"input": x}
    with torch.no_grad():
        h = m.stem(x)
        named["stem"] = h
        for i in range(1, 5):
            h = getattr(m, f"layer{i}")(h)
            named[f"layer{i}"] = h
        h = m.avgpool(h)
        named["avgpool"] = h
        logits = m.fc(h.flatten(1))
        named["logits"] = logits
        assert torch.allclose(logits, m(x), atol=1e-6)
    save_file({k: v.contiguous() for k, v in named.items()}, os.path.join(out, "io.safetensors"))


if __name__ == "__main__":
    root = sys.argv[1]
    os.makedirs(os.path.join(root, "pth"), exist_ok=True)
    os.makedirs(os.path.join(root, "r3d"), exist_ok=True)
    pth_fixtures(os.path.join(root, "pth"))
    r3d_fixture(os.path.join(root, "r3d"))
    print("ok")
