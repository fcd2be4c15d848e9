#!/usr/bin/env bash
# GPU readiness check (<= 8 minutes on one GPU):
#   1. generates a real-format JPEG folder (ImageNet layout, wnid folders, 20 classes x 6 images),
#   2. runs `defendr reproduce --profile paper` on it at reduced size (ResNet-101 at 299, bf16,
#      channels_last as Runtime does on CUDA, every stage once; no pretrained download),
#   3. measures PGD-10 images/s on ResNet-101 at 299 in bf16 and the achieved TFLOP/s as a share of
#      the GPU's bf16 peak (table in benchmarks/gpu_check.py; target >= 40%).
# Writes benchmarks/results/gpu_check-<device>[-tiny].json (with the calibration figures).
#
#   bash benchmarks/gpu_check.sh                      # CUDA, the sizes above
#   bash benchmarks/gpu_check.sh --device cpu --tiny  # CPU smoke run (tinyresnet at 32 px, 5 classes)
set -euo pipefail

DEVICE=cuda
TINY=0
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) DEVICE="$2"; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY="python3"; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/defendr-gpu-check.XXXXXX")"
if [[ "$KEEP" == 0 ]]; then trap 'rm -rf "$WORK"' EXIT; else echo "work folder: $WORK"; fi

if [[ "$TINY" == 1 ]]; then
  CLASSES=5; PER_CLASS=6; SIZE=32; ARCH=tinyresnet; JPEG_W=64; JPEG_H=48
  PGD_ARCH=tinyresnet; PGD_SIZE=32; PGD_BATCH=8; PGD_ITERS=2; TAG="$DEVICE-tiny"
  EXTRA=(--set "methods.dunet.width_mult=0.25" --set "extra_test_attacks=[]")
else
  CLASSES=20; PER_CLASS=6; SIZE=299; ARCH=resnet101; JPEG_W=500; JPEG_H=375
  PGD_ARCH=resnet101; PGD_SIZE=299; PGD_BATCH=64; PGD_ITERS=5; TAG="$DEVICE"
  EXTRA=()
fi

"$PY" "$ROOT/benchmarks/gpu_check.py" jpegs "$WORK/imagenet" --classes "$CLASSES" --per-class "$PER_CLASS" \
  --width "$JPEG_W" --height "$JPEG_H"

# The paper profile, reduced: 6 images per class split 4/1/1, one epoch per training, a small
# adaptive evaluation; random initialisation (no download) so the backbone is trained, not frozen.
SETTINGS=(
  --set "data.classes=$CLASSES" --set "data.per_class=$PER_CLASS" --set "data.split=4,1,1"
  --set "data.image_size=$SIZE" --set "model.arch=$ARCH" --set "model.pretrained=null"
  --set "model.freeze_backbone=false" --set "train.epochs=1" --set "train.batch_size=16"
  --set "methods.dunet.epochs=1" --set "methods.dunet.batch_size=4"
  --set "evaluate.subset=$CLASSES" --set "evaluate.steps=[10]" --set "evaluate.restarts=[1]"
  --set "evaluate.eot=2" --set "evaluate.batch_size=16" --set "gradcam.count=4" ${EXTRA[@]+"${EXTRA[@]}"}
)
START=$(date +%s)
"$PY" -m defendr_cli --workdir "$WORK/ws" reproduce --profile paper --source "$WORK/imagenet" \
  --device "$DEVICE" --precision bf16 "${SETTINGS[@]}" --json > "$WORK/reproduce.json"
REPRODUCE_SECONDS=$(( $(date +%s) - START ))
echo "reproduce (paper profile, reduced) finished in ${REPRODUCE_SECONDS} s"

"$PY" "$ROOT/benchmarks/gpu_check.py" pgd --device "$DEVICE" --arch "$PGD_ARCH" --size "$PGD_SIZE" \
  --batch "$PGD_BATCH" --iterations "$PGD_ITERS" --out "$WORK/pgd.json"

"$PY" "$ROOT/benchmarks/gpu_check.py" combine --reproduce "$WORK/reproduce.json" \
  --reproduce-seconds "$REPRODUCE_SECONDS" --pgd "$WORK/pgd.json" --settings "${SETTINGS[*]}" \
  --out "$ROOT/benchmarks/results/gpu_check-$TAG.json"
