#!/usr/bin/env bash
# Packaging check (CI): build the wheel, install it into a fresh virtual environment and run the main job from a
# folder outside the checkout, with no source tree on sys.path and no EMOEMBED_DATA/EMOEMBED_HOME: the installed
# package alone (its bundled datasets and recipes) must train a small codec, a word encoder on it, and predict.
#   bash scripts/wheel_smoke.sh            uses $PYTHON (default python3) and a temporary folder
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/emoembed-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
t0=$(date +%s)
# build from a copy of the files git knows (tracked + untracked, not ignored): no stale build/ output, nothing
# written into the checkout
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -cf - -T - | tar -xf - -C "$WORK/src"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$WORK/dist" "$WORK/src"
WHEEL="$(ls "$WORK"/dist/emoembed-*.whl)"
"$PY" - "$WHEEL" <<'PYEOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
need = ["emoembed/data/__init__.py", "emoembed/cli/__init__.py", "emoembed/training/encoder.py",
        "emoembed/resources/mappings/default.yaml", "emoembed/resources/mappings/formats.yaml",
        "emoembed/resources/encoders/word-glove50.yaml", "emoembed/resources/encoders/word-minilm.yaml",
        "emoembed/resources/suites/paper.yaml",
        "emoembed/resources/data_registry/norare_warriner.yaml",
        "emoembed/resources/data_registry/bundled/warriner_xanew/Ratings_Warriner_et_al.csv",
        "emoembed/resources/pretrained/models.yaml"]
from pathlib import Path
for model in sorted(p.parent.name for p in Path("pretrained").glob("*/model.safetensors")):  # each packaged model
    need += [f"emoembed/resources/pretrained/{model}/{f}" for f in ("config.json", "model.safetensors", "card.json", "README.md")]
missing = [n for n in need if n not in names]
assert not missing, f"the wheel lacks {missing}"
print(f"wheel: {len(names)} files, resources included")
PYEOF
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0 -c "$REPO/constraints-cpu.txt" "$WHEEL"
t1=$(date +%s)
mkdir "$WORK/run"
cd "$WORK/run"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
export EMOEMBED_CACHE="$WORK/cache"
unset EMOEMBED_DATA EMOEMBED_HOME PYTHONPATH
E="$WORK/venv/bin/emoembed"
"$WORK/venv/bin/python" -c "
import emoembed, emoembed.data, emoembed.settings as s
assert '$REPO' not in emoembed.__file__ and 'site-packages' in emoembed.__file__, emoembed.__file__
assert s.project_root() == s.INSTALLED_RESOURCES, s.project_root()
print('installed at', emoembed.__file__)"
"$E" list recipes
"$E" data list --no-count | tail -1
"$E" map --out codec --quiet --set training.epochs=2 --set training.steps_per_epoch=40 | tail -2
"$E" fit-encoder --modality word --codec codec --data warriner --augment be5 --out words --quiet --epochs 2 | tail -2
"$E" predict --model words --format be5 happy grief furious | tee pred.csv
test "$(wc -l < pred.csv)" -eq 4
# the pretrained models shipped in the wheel: listed, loaded by name, predicting without training
"$E" list pretrained
printf 'valence,arousal,dominance\n0.8,0.5,0.3\n' > vad.csv
"$E" predict --model emoembed/codec-full --source-format vad --input vad.csv --format be5
# content models get content of their modality: two words or sentences, or two small generated images
"$WORK/venv/bin/python" -c "
from PIL import Image
for i, v in enumerate((40, 200)):
    Image.new('L', (48, 48), v).save(f'face{i}.png')"
for m in $("$WORK/venv/bin/python" -c "from emoembed.model_zoo import catalogue; print(' '.join(n for n, s in catalogue().items() if s['kind'] == 'model'))"); do
  modality=$("$WORK/venv/bin/python" -c "from emoembed.model_zoo import catalogue; print(catalogue()['$m']['modality'])")
  if [ "$modality" = image ]; then items=(face0.png face1.png); else items=(happy grief); fi
  "$E" predict --model "emoembed/$m" --format be5 "${items[@]}" | tee pre.csv
  test "$(wc -l < pre.csv)" -eq 3
done
echo "wheel smoke passed: build+install $((t1 - t0)) s, jobs $(( $(date +%s) - t1 )) s"
