#!/usr/bin/env bash
# Throughput of `ethos pretrain-index` (index + decoded-clip cache) on 4K NVR-like footage: video hours
# indexed per CPU-hour, and the CPU cost of one clip, from which the 960 h estimate in docs/ssl.md follows.
#
#   bench/pretrain_index.sh [ETHOS] [MINUTES] [CODEC]      # defaults: target/release/ethos 2 libx264
#
# Footage: MINUTES of 3840x2160 at 15 fps from FFmpeg's testsrc2 with temporal noise (an NVR's sensor
# noise keeps every P-frame busy), GOP 30 (2 s), named like NVR exports (ch1_20240301080000.mp4). The
# index takes one 4 s clip (16 frames at 4 fps, short side 320) per 15 s, so the run has several clips;
# each clip is an independent seek, so the CPU per clip does not depend on the spacing, and the rate at
# the reference spacing (one clip per minute) is 60 s / (CPU-s per clip) video-hours per CPU-hour.
set -euo pipefail
ETHOS=${1:-target/release/ethos}
MINUTES=${2:-2}
CODEC=${3:-libx264}
WORK=${WORK:-$(mktemp -d /tmp/ethos-pretrain-bench.XXXXXX)}
mkdir -p "$WORK/videos"
VIDEO="$WORK/videos/ch1_20240301080000.mp4"
# Footage of your own: put it in $WORK/videos/ first; the synthetic video is written only into an
# empty folder.
if [ -z "$(ls -A "$WORK/videos")" ]; then
  echo "writing $MINUTES min of 4K $CODEC footage to $VIDEO" >&2
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=3840x2160:rate=15" \
    -t $((MINUTES * 60)) -vf "noise=alls=6:allf=t" -c:v "$CODEC" -preset ultrafast -g 30 \
    -pix_fmt yuv420p "$VIDEO"
fi
cat > "$WORK/bench.yaml" <<YAML
data: {classes: [a, b], fps: 4, num_frames: 16, jitter_frames: 0, cache_short_side: 320, input_size: 256}
model: {arch: vjepa2, preset: vjepa2_vitl}
pretrain:
  videos: videos
  clip_seconds: 4.0
  clips_per_hour: 240
YAML
rm -rf "$WORK/run"
"$ETHOS" pretrain-index --config "$WORK/bench.yaml" --out "$WORK/run" ${JOBS:+--jobs $JOBS} > "$WORK/summary.json"
python3 - "$WORK/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
per_clip = s["cpu_s"] / max(s["clips"], 1)
print(json.dumps(s, indent=1))
print(f"clips {s['clips']}, {s['cpu_s']:.1f} CPU-s, {s['wall_s']:.1f} s wall with {s['threads']} threads: "
      f"{per_clip:.2f} CPU-s per clip; at one clip per minute {3600 / per_clip / 60:.1f} video hours per CPU-hour")
PY
