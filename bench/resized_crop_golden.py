"""Golden cases for ethos's crop + resize (RandomResizedCrop's resampling step) from torchvision.

Each case: a deterministic uint8 image (the formula is repeated in the Rust test), a crop box and
an output size; the expected output is torchvision v2 `resized_crop(..., antialias=True)`
(bilinear) on the `(3, H, W)` uint8 tensor, i.e. crop first, then resize.
Fixture layout: u32 case count, then per case 8 little-endian u32 (H, W, top, left, crop_h,
crop_w, out_h, out_w) followed by out_h * out_w * 3 bytes, HWC.

Usage: python bench/resized_crop_golden.py OUT.bin   (torch 2.11, torchvision 0.26)
"""
import struct
import sys

import torch
import torchvision.transforms.v2.functional as F
from torchvision.transforms import InterpolationMode


def image(h, w):
    y = torch.arange(h).view(h, 1, 1)
    x = torch.arange(w).view(1, w, 1)
    c = torch.arange(3).view(1, 1, 3)
    return ((x * 7 + y * 13 + c * 50 + ((x * y) % 31) * 5) % 256).to(torch.uint8)


CASES = [
    # (H, W, (top, left, crop_h, crop_w), (out_h, out_w))
    (256, 455, (10, 20, 230, 390), (224, 224)),  # shrink both ways, inside the frame
    (256, 455, (0, 0, 256, 455), (224, 224)),  # the whole frame
    (256, 455, (0, 100, 256, 256), (224, 224)),  # full height
    (64, 80, (5, 3, 40, 50), (32, 32)),
    (64, 80, (5, 3, 40, 50), (50, 60)),  # enlarge
    (256, 341, (30, 40, 200, 150), (224, 224)),  # shrink rows, enlarge columns
    (48, 64, (2, 4, 32, 40), (32, 24)),  # crop height equals output height
    (48, 64, (2, 4, 30, 24), (20, 24)),  # crop width equals output width
]


def main():
    out = bytearray(struct.pack("<I", len(CASES)))
    for h, w, (top, left, ch, cw), (oh, ow) in CASES:
        img = image(h, w).permute(2, 0, 1).contiguous()
        res = F.resized_crop(img, top, left, ch, cw, [oh, ow],
                             interpolation=InterpolationMode.BILINEAR, antialias=True)
        out += struct.pack("<8I", h, w, top, left, ch, cw, oh, ow)
        out += res.permute(1, 2, 0).contiguous().numpy().tobytes()
    with open(sys.argv[1], "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main()
