"""`python -m model.cli`: the `tinygpt` command."""
import sys

from . import main

sys.exit(main())
