"""`python -m harness ...`: see harness.cli.

Ctrl-C while the CLI's modules load prints one line and exits 130, as one during the command does (harness.cli
catches that; torch and transformers load inside it). `harness/__init__` does the same for the package's own
imports (numpy), which run before this module.
"""

import sys

try:
    from harness.cli import main
except KeyboardInterrupt:
    sys.stderr.write("interrupted (Ctrl-C) while the harness was starting: nothing was run or written.\n")
    sys.exit(130)  # harness.errors.INTERRUPTED_EXIT, spelled out: importing harness.errors could itself be interrupted

sys.exit(main())
