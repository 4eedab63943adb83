#!/usr/bin/env python3
"""Reads the TensorBoard event files of an ethos run with TensorBoard's own reader and checks them
against the run's history.csv: every epoch's train_loss, val_loss, lr and validation metrics at
step = epoch, per-interval train/batch_loss and train/lr, and the val/confusion image per epoch.

    python tools/check_tensorboard.py RUN_DIR

Prints a JSON summary (tags, counts, largest difference) and exits 1 when a value differs by more
than float32 rounding. Needs the `tensorboard` package (pip install tensorboard); ethos itself never
runs Python.
"""
import csv
import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> int:
    run = Path(sys.argv[1])
    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    with open(run / "history.csv", newline="") as f:
        history = list(csv.DictReader(f))
    pairs = {"epoch/train_loss": "train_loss", "epoch/val_loss": "val_loss", "epoch/lr": "lr",
             "epoch/train_val_gap": "train_val_gap"}
    for col in history[0]:
        if col.startswith(("f1_", "precision_", "recall_", "auc_", "ap_")) or col in ("macro_f1", "accuracy"):
            pairs[f"val/{col}"] = col
    worst = 0.0
    problems = []
    for tag, col in pairs.items():
        if tag not in tags["scalars"]:
            problems.append(f"missing scalar tag {tag}")
            continue
        by_step = {e.step: e.value for e in acc.Scalars(tag)}
        for row in history:
            if row[col] in ("", "nan"):
                continue
            want = float(row[col])
            got = by_step.get(int(row["epoch"]))
            if got is None:
                problems.append(f"{tag}: no value at epoch {row['epoch']}")
                continue
            diff = abs(got - want) / max(1.0, abs(want))
            worst = max(worst, diff)
            if diff > 1e-6:
                problems.append(f"{tag} epoch {row['epoch']}: {got} vs {want}")
    for tag in ("train/batch_loss", "train/lr"):
        if tag not in tags["scalars"]:
            problems.append(f"missing scalar tag {tag}")
    images = acc.Images("val/confusion") if "val/confusion" in tags["images"] else []
    if len(images) != len(history):
        problems.append(f"val/confusion: {len(images)} images for {len(history)} epochs")
    summary = {
        "scalar_tags": sorted(tags["scalars"]),
        "image_tags": sorted(tags["images"]),
        "epochs": len(history),
        "batch_loss_points": len(acc.Scalars("train/batch_loss")) if "train/batch_loss" in tags["scalars"] else 0,
        "confusion_images": [(i.step, i.width, i.height) for i in images],
        "checked_pairs": len(pairs),
        "max_relative_difference": worst,
        "problems": problems,
    }
    print(json.dumps(summary, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
