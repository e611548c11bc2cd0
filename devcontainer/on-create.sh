#!/usr/bin/env bash
# onCreateCommand of .devcontainer/devcontainer.json: the heavy, one-time part.
# Codespaces prebuilds run it once and snapshot the result, so a codespace
# made from a prebuild starts with all of this done.
#
#   make setup   .venv from uv.lock, then `lab-env setup`: it finds the pinned
#                daprd the image put in ~/.dapr/bin and fetches Kafka's jars
#   setup --cli  the Dapr CLI, which a native first start leaves for first use
#   --check      fails if devcontainer/.env or compose.yaml drifted from
#                lab_env/versions.toml (the image was built from them)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "on-create: make setup (the first time this takes a few minutes)"
make setup
# The Dapr CLI (lab 05's `dapr run -f`) too: a prebuild snapshots it.
.venv/bin/lab-env setup --cli

echo "on-create: checking devcontainer/ against lab_env/versions.toml"
.venv/bin/python -m lab_env.stack.devcontainer --check
