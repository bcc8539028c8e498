#!/usr/bin/env bash
# Set up (once) and run emoembed from a source checkout.
#   bash scripts/dev.sh demo        set up, check the data registry, train the default codec (runs/map-default),
#                                   a word encoder on it (packaged MiniLM on the bare word; Warriner VAD + the
#                                   bundled EmoMap BE5 lexicon; codec-made NRC labels) and predict BE5; then the
#                                   same words with the pretrained word model and VAD → BE5 with the pretrained
#                                   codec, and a few sentences in BE5 and VAD with the pretrained text model (all
#                                   shipped with the package: `emoembed list pretrained`; a model whose weights are
#                                   not built yet is skipped with a note)
#   bash scripts/dev.sh test [ARGS] set up if needed and run the test suite (ARGS go to pytest)
# The virtual environment lives in .venv (override with EMOEMBED_VENV). torch is pinned to the CPU wheel
# 2.13.0 in the same pip call, so no CUDA package is ever pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${EMOEMBED_VENV:-.venv}"
PY="${PYTHON:-python3}"
stamp="$VENV/.emoembed-installed"
if [ ! -x "$VENV/bin/emoembed" ] || [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ constraints-cpu.txt -nt "$stamp" ]; then
  echo "setting up $VENV (torch==2.13.0 CPU wheel + emoembed) ..." >&2
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check torch==2.13.0 -c constraints-cpu.txt -e ".[test]"
  if "$VENV/bin/python" -m pip list 2>/dev/null | grep -qiE '^(nvidia-|triton )'; then
    echo "error: a CUDA package was installed; check constraints-cpu.txt" >&2; exit 1
  fi
  touch "$stamp"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
DEMO_WORD_MODEL=words-minilm
DEMO_TEXT_MODEL=text-minilm
cmd="${1:-demo}"; shift || true
case "$cmd" in
  demo)
    "$VENV/bin/emoembed" data check
    "$VENV/bin/emoembed" map --out runs/map-default --quiet "$@"
    "$VENV/bin/emoembed" fit-encoder --modality word --codec runs/map-default --data warriner,emomap_warriner_be5 \
      --augment nrc10 --out runs/words-default --quiet
    "$VENV/bin/emoembed" predict --model runs/words-default --format be5 happy grief furious spider vacation
    # beside what it trained: the pretrained models shipped with the package (no training, offline)
    "$VENV/bin/emoembed" list pretrained
    echo "pretrained word model (emoembed list pretrained), the same words:"
    "$VENV/bin/emoembed" predict --model "emoembed/$DEMO_WORD_MODEL" --format be5 happy grief furious spider vacation
    echo "pretrained codec: VAD ratings converted to BE5 (cheerful, scared, furious):"
    printf 'item,valence,arousal,dominance\ncheerful,0.8,0.5,0.3\nscared,-0.6,0.7,-0.5\nfurious,-0.7,0.8,0.2\n' \
      > runs/demo-vad.csv
    "$VENV/bin/emoembed" predict --model emoembed/codec-full --source-format vad --input runs/demo-vad.csv --format be5
    # the pretrained text model: a LoRA adapter over the packaged MiniLM (its weights are built by
    # `emoembed pretrained build text-minilm`; until then the demo says so and goes on)
    if "$VENV/bin/python" -c "import sys; from emoembed.model_zoo import pretrained_names; sys.exit('$DEMO_TEXT_MODEL' not in pretrained_names())"; then
      printf 'text\n%s\n%s\n%s\n%s\n' "I can't stop smiling today" "My grandmother passed away last night." \
        "They cancelled my flight again and nobody will tell me why!" "There is something moving in the dark basement." \
        > runs/demo-texts.csv
      echo "pretrained text model emoembed/$DEMO_TEXT_MODEL, BE5:"
      "$VENV/bin/emoembed" predict --model "emoembed/$DEMO_TEXT_MODEL" --format be5 --input runs/demo-texts.csv --quiet
      echo "the same sentences, VAD:"
      "$VENV/bin/emoembed" predict --model "emoembed/$DEMO_TEXT_MODEL" --format vad --input runs/demo-texts.csv --quiet
    else
      echo "pretrained text model emoembed/$DEMO_TEXT_MODEL: not built yet in this checkout (no weights in" \
        "pretrained/$DEMO_TEXT_MODEL/); build it with \`emoembed pretrained build $DEMO_TEXT_MODEL\` (25–60 CPU-minutes) —" \
        "skipping the text predictions"
    fi
    ;;
  test)
    "$VENV/bin/python" -m pytest -q "$@"
    ;;
  *)
    echo "usage: bash scripts/dev.sh demo|test [args]" >&2; exit 2
    ;;
esac
