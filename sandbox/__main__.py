"""`python -m sandbox`: run the local sandbox in the foreground (see sandbox.launcher)."""

import sys

from sandbox.launcher import main

sys.exit(main(sys.argv[1:]))
