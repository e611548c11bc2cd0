"""`python -m lab_env.cli`: the same as the `lab-env` command."""

import sys

from lab_env.cli.main import main

sys.exit(main())
