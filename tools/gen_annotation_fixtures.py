#!/usr/bin/env python3
"""Writes the annotation-tool fixtures of crates/ethos-annotations/tests/fixtures/.

BORIS (PyPI `boris-behav-obs`, run headless with QT_QPA_PLATFORM=offscreen) and Datumaro (PyPI
`datumaro`) are driven through their own code:

- BORIS projects: the project dictionaries are serialised the way BORIS saves them
  (`json.dumps(pj, default=utilities.decimal_default)`, gzip for `.boris.gz`), then every project
  (also the older format versions) is opened with BORIS's own reader
  (`project_functions.open_project_json`, which converts older versions), and BORIS's own export
  functions write the aggregated events (`export_observation.export_aggregated_events` +
  `dataset_write`) and the tabular events (`export_observation.export_tabular_events`) of it.
  The aggregated export is the reference the Rust importer is compared with.
- CVAT: Datumaro's CVAT exporter writes a "CVAT for video 1.1"-style XML with tracks
  (`use_track=True`: `<track>` elements with `outside` / `keyframe` boxes) and an images-format XML
  with per-frame `<tag>`s.
- Label Studio: no headless writer of its JSON export exists on PyPI without running the server,
  so the export is written here from the documented result format (`timelinelabels` ranges,
  `videorectangle` sequences, `choices`), see docs/annotations.md.

Setup (Debian): `apt-get install libpulse-mainloop-glib0 libmpv2` (BORIS imports its Qt multimedia
and mpv modules at import time), then
`python3 -m venv /tmp/annot-venv && /tmp/annot-venv/bin/pip install boris-behav-obs datumaro`,
`QT_QPA_PLATFORM=offscreen /tmp/annot-venv/bin/python tools/gen_annotation_fixtures.py`.
"""

import gzip
import json
import os
import shutil
import sys
import tempfile
from decimal import Decimal as dec
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

OUT = Path(__file__).resolve().parent.parent / "crates" / "ethos-annotations" / "tests" / "fixtures"


# ---------------------------------------------------------------------------------------------
# BORIS
# ---------------------------------------------------------------------------------------------


def ethogram(modifiers_as_string=False):
    side = "left,right" if modifiers_as_string else {"0": {"name": "side", "type": 0, "values": ["left", "right"]}}
    behaviors = [
        ("e", "ear", "State event", side),
        ("t", "tail", "State event", "" if modifiers_as_string else {}),
        ("g", "groom", "Point event", "" if modifiers_as_string else {}),
    ]
    return {
        str(i): {
            "type": kind,
            "key": key,
            "code": code,
            "description": "",
            "color": "",
            "category": "",
            "modifiers": mods,
            "excluded": "",
            "coding map": "",
        }
        for i, (key, code, kind, mods) in enumerate(behaviors)
    }


def subjects(v0=False):
    names = [("1", "calf1"), ("2", "calf2")]
    if v0:
        return {str(i): [k, n] for i, (k, n) in enumerate(names)}
    return {str(i): {"key": k, "name": n, "description": ""} for i, (k, n) in enumerate(names)}


def media_obs(files1, lengths, fps, events, files2=(), offset2=0.0, version="7.0", indep=None, time_offset=0.0):
    """A MEDIA observation in the layout of project format `version`."""
    files = {str(p): [] for p in range(1, 9)}
    files["1"] = list(files1)
    files["2"] = list(files2)
    info = {
        "length": {f: l for f, l in zip(list(files1) + list(files2), lengths)},
        "fps": {f: fps for f in list(files1) + list(files2)},
        "hasVideo": {f: True for f in list(files1) + list(files2)},
        "hasAudio": {f: False for f in list(files1) + list(files2)},
    }
    obs = {
        "file": files,
        "type": "MEDIA",
        "date": "2024-05-01T10:00:00.000",
        "description": "",
        "time offset": time_offset,
        "events": events,
        "observation time interval": [0, 0],
        "independent_variables": indep or {},
        "visualize_spectrogram": False,
        "visualize_waveform": False,
        "media_creation_date_as_offset": False,
        "media_scan_sampling_duration": 0,
        "image_display_duration": 1,
        "close_behaviors_between_videos": False,
        "media_info": info,
    }
    if version == "7.0":
        obs["media_info"]["offset"] = {"1": 0.0, "2": offset2} if files2 else {"1": 0.0}
    else:
        # Format < 7: one offset for the second player, at observation level.
        obs["time offset second player"] = offset2
        files = {"1": list(files1), "2": list(files2)}
        obs["file"] = files
    return obs


def events_obs1(frames=True):
    # (time, subject, code, modifier, comment): two subjects, modifiers, overlapping bouts, a point.
    raw = [
        (2.0, "calf1", "ear", "left", ""),
        (3.5, "calf2", "ear", "right", ""),
        (5.25, "calf1", "ear", "left", ""),
        (6.0, "calf2", "ear", "right", "long one"),
        (8.0, "", "tail", "", ""),
        (9.0, "calf1", "groom", "", ""),
        (11.5, "", "tail", "", ""),
        (20.0, "calf1", "ear", "right", ""),
        (24.4, "calf1", "ear", "right", ""),
    ]
    if frames:
        return [[t, s, c, m, k, int(round(t * 15))] for (t, s, c, m, k) in raw]
    return [[t, s, c, m, k] for (t, s, c, m, k) in raw]


def events_obs2(frames=True):
    # Two 30 s files in player 1: events in the first and in the second file; the second
    # player plays a synced copy (its events are not separate).
    raw = [
        (4.0, "calf1", "tail", "", ""),
        (7.0, "calf1", "tail", "", ""),
        (31.0, "calf2", "ear", "left", ""),
        (36.5, "calf2", "ear", "left", ""),
        (40.0, "calf1", "groom", "", ""),
    ]
    if frames:
        return [[t, s, c, m, k, "NA"] for (t, s, c, m, k) in raw]
    return [[t, s, c, m, k] for (t, s, c, m, k) in raw]


def live_obs():
    return {
        "file": [],
        "type": "LIVE",
        "date": "2024-05-02T09:00:00.000",
        "description": "live coding in the barn",
        "time offset": 0.0,
        "events": [[1.0, "calf1", "ear", "left", ""], [2.0, "calf1", "ear", "left", ""]],
        "observation time interval": [0, 0],
        "independent_variables": {},
        "scan_sampling_time": 0,
        "start_from_current_time": False,
    }


def project(version, observations, modifiers_as_string=False):
    pj = {
        "time_format": "hh:mm:ss",
        "project_date": "2024-05-01T09:00:00",
        "project_name": f"calves v{version}",
        "project_description": "",
        "project_format_version": version,
        "subjects_conf": subjects(),
        "behaviors_conf": ethogram(modifiers_as_string),
        "observations": observations,
        "behavioral_categories": [],
        "independent_variables": {
            "0": {"label": "camera", "description": "", "type": "text", "default value": "", "possible values": ""},
            "1": {"label": "group", "description": "", "type": "text", "default value": "", "possible values": ""},
        },
        "coding_map": {},
        "behaviors_coding_map": [],
        "converters": {},
    }
    return pj


def boris_projects():
    v7 = project(
        "7.0",
        {
            "obs1": media_obs(
                ["C:\\farm\\videos\\cam1\\day1.mp4"],
                [60.0],
                15.0,
                events_obs1(frames=True),
                indep={"camera": "cam1", "group": "pen3"},
            ),
            "obs2": media_obs(
                ["/data/cam2/part1.mp4", "/data/cam2/part2.mp4"],
                [30.0, 30.0, 60.0],
                15.0,
                events_obs2(frames=True),
                files2=["/data/cam2/overview.mp4"],
                offset2=1.5,
                indep={"camera": "cam2"},
            ),
            "live1": live_obs(),
        },
    )
    # Format 4.0 (BORIS 4-6): five event fields, the second player's offset at observation level.
    v4 = project(
        "4.0",
        {
            "obs1": media_obs(
                ["/videos/cam1/day1.mp4"],
                [60.0],
                15.0,
                events_obs1(frames=False),
                version="4.0",
                indep={"camera": "cam1"},
            ),
            "obs2": media_obs(
                ["/data/cam2/part1.mp4", "/data/cam2/part2.mp4"],
                [30.0, 30.0, 60.0],
                15.0,
                events_obs2(frames=False),
                files2=["/data/cam2/overview.mp4"],
                offset2=2.0,
                version="4.0",
            ),
        },
    )
    # Format < 4.0: modifiers of the ethogram as a string ("a,b|c,d").
    v3 = project(
        "3.0",
        {
            "obs1": media_obs(
                ["/videos/cam1/day1.mp4"], [60.0], 15.0, events_obs1(frames=False), version="3.0"
            ),
        },
        modifiers_as_string=True,
    )
    return {"boris_v7": v7, "boris_v4": v4, "boris_v3": v3}


def write_boris(util, pf, eo, cfg):
    import tablib

    for stem, pj in boris_projects().items():
        text = json.dumps(pj, default=util.decimal_default, indent=1)
        (OUT / f"{stem}.boris").write_text(text)
        if stem == "boris_v7":
            with gzip.open(OUT / f"{stem}.boris.gz", mode="wt", encoding="utf-8") as f:
                f.write(text)

        # BORIS's own reader (converts older formats); on a copy: it backs up old versions.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{stem}.boris"
            shutil.copy(OUT / f"{stem}.boris", path)
            _, _, loaded, msg = pf.open_project_json(str(path))
        if "error" in loaded:
            sys.exit(f"BORIS cannot read {stem}: {loaded['error']}")
        print(f"{stem}: BORIS read it ({msg or 'no conversion'})", file=sys.stderr)

        subjects_all = sorted([loaded["subjects_conf"][k]["name"] for k in loaded["subjects_conf"]] + [cfg.NO_FOCAL_SUBJECT])
        behaviors_all = sorted(loaded["behaviors_conf"][k]["code"] for k in loaded["behaviors_conf"])
        params = {
            cfg.SELECTED_SUBJECTS: subjects_all,
            cfg.SELECTED_BEHAVIORS: behaviors_all,
            "time": cfg.TIME_FULL_OBS,
            cfg.START_TIME: 0,
            cfg.END_TIME: 0,
        }
        media_obs_ids = sorted(o for o in loaded["observations"] if loaded["observations"][o]["type"] == "MEDIA")

        # Aggregated export of every media observation, grouped in one file (as BORIS's
        # "group events in one file" choice writes it).
        max_mod = 0
        for obs_id in media_obs_ids:
            _, m = eo.export_aggregated_events(loaded, params, obs_id)
            max_mod = max(max_mod, m)
        header = [
            "Observation id", "Observation date", "Description", "Observation type", "Source",
            "Time offset (s)", "Coding duration", "Media duration (s)", "FPS (frame/s)",
        ]
        header += [loaded["independent_variables"][k]["label"] for k in sorted(loaded["independent_variables"])]
        header += ["Subject", "Observation duration by subject by observation", "Behavior", "Behavioral category"]
        header += [f"Modifier #{i + 1}" for i in range(max_mod)]
        header += [
            "Behavior type", "Start (s)", "Stop (s)", "Duration (s)", "Media file name",
            "Image index start", "Image index stop", "Image file path start", "Image file path stop",
            "Comment start", "Comment stop",
        ]
        grouped = tablib.Dataset(headers=header)
        grouped.title = "Aggregated events"
        for obs_id in media_obs_ids:
            data, _ = eo.export_aggregated_events(loaded, params, obs_id, force_number_modifiers=max_mod)
            for row in sorted(list(data), key=lambda r: float(r[header.index("Start (s)")])):
                grouped.append(row)
        for fmt in ("tsv", "csv", "xlsx") if stem == "boris_v7" else ("tsv", "csv"):
            ok, msg = eo.dataset_write(grouped, str(OUT / f"{stem}.aggregated.{fmt}"), fmt)
            if not ok:
                sys.exit(f"aggregated export failed: {msg}")

        # Tabular export, one file per observation (BORIS writes one per observation).
        if stem == "boris_v7":
            for obs_id, fmt in (("obs1", "tsv"), ("obs2", "csv")):
                ok, msg = eo.export_tabular_events(
                    loaded, params, obs_id, loaded["observations"][obs_id], loaded["behaviors_conf"],
                    str(OUT / f"{stem}.{obs_id}.tabular.{fmt}"), fmt,
                )
                if not ok:
                    sys.exit(f"tabular export failed: {msg}")


# ---------------------------------------------------------------------------------------------
# CVAT (Datumaro)
# ---------------------------------------------------------------------------------------------


def write_cvat():
    import numpy as np
    from datumaro.components.annotation import Bbox, Label
    from datumaro.components.dataset import Dataset
    from datumaro.components.dataset_base import DatasetItem
    from datumaro.components.media import Image

    frames = 40
    # Track 1 (ear): visible on frames 5..14, outside from 15, back on 25..29, outside from 30.
    # Track 2 (tail): visible on frames 10..19, outside from 20 (the task's last frame ends it
    # otherwise). Keyframes only where the state changes; CVAT interpolates in between.
    keys = {
        1: (0, [(5, False), (15, True), (25, False), (30, True)]),
        2: (1, [(10, False), (20, True)]),
    }
    items = []
    for f in range(frames):
        anns = []
        for tid, (label, kf) in keys.items():
            for frame, outside in kf:
                if frame == f:
                    anns.append(
                        Bbox(10, 10, 20, 20, label=label,
                             attributes={"track_id": tid, "outside": outside, "keyframe": True, "occluded": False})
                    )
        items.append(
            DatasetItem(id=f"frame_{f:06d}", subset="default", media=Image.from_numpy(np.zeros((48, 64, 3), np.uint8)),
                        attributes={"frame": f}, annotations=anns)
        )
    ds = Dataset.from_iterable(items, categories=["ear", "tail"])
    with tempfile.TemporaryDirectory() as tmp:
        ds.export(tmp, "cvat", use_track=True, save_media=False)
        shutil.copy(Path(tmp) / "default.xml", OUT / "cvat_video_tracks.xml")

    # Images format: per-frame tags.
    items = []
    for f in range(12):
        anns = []
        if 2 <= f <= 5:
            anns.append(Label(0))
        if 8 <= f <= 9:
            anns.append(Label(1))
        items.append(
            DatasetItem(id=f"frame_{f:06d}", subset="default", media=Image.from_numpy(np.zeros((48, 64, 3), np.uint8)),
                        attributes={"frame": f}, annotations=anns)
        )
    ds = Dataset.from_iterable(items, categories=["ear", "tail"])
    with tempfile.TemporaryDirectory() as tmp:
        ds.export(tmp, "cvat", save_media=False)
        shutil.copy(Path(tmp) / "default.xml", OUT / "cvat_images_tags.xml")


# ---------------------------------------------------------------------------------------------
# Label Studio (documented export format)
# ---------------------------------------------------------------------------------------------


def write_labelstudio():
    tasks = [
        {
            "id": 1,
            "data": {"video": "/data/upload/1/3f2a9c1d-day1.mp4"},
            "annotations": [
                {
                    "id": 11,
                    "completed_by": 1,
                    "was_cancelled": False,
                    "result": [
                        {
                            "id": "a1", "from_name": "behaviour", "to_name": "video", "type": "timelinelabels",
                            "origin": "manual",
                            "value": {"ranges": [{"start": 16, "end": 45}], "timelinelabels": ["ear"]},
                        },
                        {
                            "id": "a2", "from_name": "behaviour", "to_name": "video", "type": "timelinelabels",
                            "origin": "manual",
                            "value": {"ranges": [{"start": 61, "end": 90}, {"start": 121, "end": 135}],
                                      "timelinelabels": ["tail"]},
                        },
                        {
                            "id": "r1", "from_name": "box", "to_name": "video", "type": "videorectangle",
                            "origin": "manual",
                            "value": {
                                "framesCount": 300, "duration": 20.0,
                                "sequence": [
                                    {"frame": 31, "enabled": True, "rotation": 0, "x": 10, "y": 10, "width": 20, "height": 20, "time": 2.0},
                                    {"frame": 46, "enabled": True, "rotation": 0, "x": 12, "y": 10, "width": 20, "height": 20, "time": 3.0},
                                    {"frame": 61, "enabled": False, "rotation": 0, "x": 12, "y": 10, "width": 20, "height": 20, "time": 4.0},
                                    {"frame": 151, "enabled": True, "rotation": 0, "x": 12, "y": 10, "width": 20, "height": 20, "time": 10.0},
                                    {"frame": 181, "enabled": False, "rotation": 0, "x": 12, "y": 10, "width": 20, "height": 20, "time": 12.0},
                                ],
                                "labels": ["groom"],
                            },
                        },
                    ],
                }
            ],
            "predictions": [],
        },
        {
            "id": 2,
            "data": {"video": "/data/local-files/?d=farm/cam2/day2.mp4"},
            "annotations": [
                {
                    "id": 12,
                    "result": [
                        {"id": "c1", "from_name": "whole", "to_name": "video", "type": "choices",
                         "value": {"choices": ["tail"]}},
                    ],
                }
            ],
        },
    ]
    (OUT / "labelstudio_video.json").write_text(json.dumps(tasks, indent=1))
    (OUT / "labelstudio_config.xml").write_text(
        '<View>\n  <Video name="video" value="$video" frameRate="15"/>\n'
        '  <TimelineLabels name="behaviour" toName="video">\n'
        '    <Label value="ear"/>\n    <Label value="tail"/>\n  </TimelineLabels>\n'
        '  <VideoRectangle name="box" toName="video"/>\n'
        '  <Labels name="boxlabel" toName="video"><Label value="groom"/></Labels>\n'
        '  <Choices name="whole" toName="video"><Choice value="ear"/><Choice value="tail"/></Choices>\n'
        "</View>\n"
    )


def check_project(project, events_csv=None):
    """Loads a project (e.g. one `ethos export boris` wrote) with BORIS's own reader, checks that
    every state event is paired, and compares BORIS's aggregated export of it with an events CSV."""
    import csv

    from boris import config as cfg
    from boris import export_observation as eo
    from boris import project_functions as pf

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(project).name
        shutil.copy(project, path)
        if str(path).endswith(".gz") and not str(path).endswith(".boris.gz"):
            sys.exit("name gzipped projects *.boris.gz, as BORIS expects")
        _, _, pj, msg = pf.open_project_json(str(path))
    if "error" in pj:
        sys.exit(f"BORIS cannot read {project}: {pj['error']}")
    subjects = sorted([pj["subjects_conf"][k]["name"] for k in pj["subjects_conf"]] + [cfg.NO_FOCAL_SUBJECT])
    behaviors = sorted(pj["behaviors_conf"][k]["code"] for k in pj["behaviors_conf"])
    params = {cfg.SELECTED_SUBJECTS: subjects, cfg.SELECTED_BEHAVIORS: behaviors, "time": cfg.TIME_FULL_OBS,
              cfg.START_TIME: 0, cfg.END_TIME: 0}
    bouts = []
    for obs_id, obs in pj["observations"].items():
        ok, why = pf.check_state_events_obs(obs_id, pj["behaviors_conf"], obs)
        if not ok:
            sys.exit(f"{obs_id}: BORIS finds unpaired state events: {why}")
        data, _ = eo.export_aggregated_events(pj, params, obs_id)
        for row in data:
            row = list(row)
            # start, stop, media file name: after the modifiers, as in the aggregated export.
            i = row.index("STATE")
            bouts.append((Path(row[i + 4]).name, round(float(row[i + 1]), 3), round(float(row[i + 3]), 3)))
    print(f"{project}: BORIS read it ({msg or 'no conversion'}); {len(bouts)} state bouts in its aggregated export",
          file=sys.stderr)
    if events_csv:
        with open(events_csv, newline="") as f:
            want = sorted((Path(r["video"]).name, round(float(r["start_s"]), 3), round(float(r["duration_s"]), 3))
                          for r in csv.DictReader(f))
        got = sorted(bouts)
        if got != want:
            sys.exit(f"BORIS's aggregated export differs from {events_csv}:\n{got}\n{want}")
        print(f"BORIS's aggregated export equals the {len(want)} events of {events_csv}", file=sys.stderr)


def main():
    args = sys.argv[1:]
    # BORIS parses the process's arguments when it is imported.
    del sys.argv[1:]
    if len(args) >= 2 and args[0] == "--check":
        check_project(args[1], args[2] if len(args) > 2 else None)
        return
    OUT.mkdir(parents=True, exist_ok=True)
    from boris import config as cfg
    from boris import export_observation as eo
    from boris import project_functions as pf
    from boris import utilities as util

    write_boris(util, pf, eo, cfg)
    write_cvat()
    write_labelstudio()
    print(f"fixtures written to {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
