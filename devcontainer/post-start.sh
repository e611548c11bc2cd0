#!/usr/bin/env bash
# postStartCommand of .devcontainer/devcontainer.json: runs at every start.
# Compose has already waited for the services' health checks; this waits
# until lab-env itself reaches them (in the container profile `lab-env up`
# starts nothing, it only waits), then runs `lab-env doctor`, whose output
# names what is wrong and how to fix it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export LAB_ENV_PROFILE="${LAB_ENV_PROFILE:-container}"

if [[ ! -x .venv/bin/lab-env ]]; then
    echo "post-start: .venv/bin/lab-env is missing: onCreateCommand did not finish; run 'make setup'" >&2
    exit 1
fi

echo "post-start: waiting for redis, kafka, placement and scheduler"
.venv/bin/lab-env up --timeout 180

echo "post-start: lab-env doctor"
.venv/bin/lab-env doctor

echo "post-start: ready. Run 'make lab' for JupyterLab (port 8888; open the URL it prints, token included)."
