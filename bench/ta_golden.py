"""Writes torchvision's TrivialAugmentWide outputs for every op, magnitude bin and sign on two
small random uint8 images, for the cross-check test
`transforms::trivial_augment::tests::matches_torchvision_golden`
(fixture: crates/ethos-data/tests/fixtures/ta_golden.bin).

Format: for each image: u16 height, u16 width, H*W*3 input bytes (HWC), u32 case count, then per
case u8 op index (torchvision order), u8 bin, u8 negative, H*W*3 output bytes.

Usage: python bench/ta_golden.py OUT.bin
"""

import struct
import sys

import torch
from torchvision.transforms import v2


def main() -> None:
    out = open(sys.argv[1], "wb")
    ta = v2.TrivialAugmentWide()
    space = ta._AUGMENTATION_SPACE
    gen = torch.Generator().manual_seed(0)
    for h, w in [(9, 11), (12, 12)]:
        img = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=gen)
        # A smooth part so contrast-like ops see mid values too.
        img[:, : h // 2] = (img[:, : h // 2] // 4 + 96)
        out.write(struct.pack("<HH", h, w))
        out.write(img.permute(1, 2, 0).contiguous().numpy().tobytes())
        cases = []
        for op_index, (name, (mags_fn, signed)) in enumerate(space.items()):
            mags = mags_fn(31, h, w)
            for b in range(31 if mags is not None else 1):
                for neg in ([0, 1] if signed else [0]):
                    m = float(mags[b]) if mags is not None else 0.0
                    if neg:
                        m *= -1
                    res = ta._apply_image_or_video_transform(img, name, m, interpolation=ta.interpolation, fill=ta._fill)
                    cases.append((op_index, b, neg, res.permute(1, 2, 0).contiguous().numpy().tobytes()))
        out.write(struct.pack("<I", len(cases)))
        for op_index, b, neg, data in cases:
            out.write(struct.pack("<BBB", op_index, b, neg))
            out.write(data)
    out.close()


if __name__ == "__main__":
    main()
