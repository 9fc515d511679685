"""Entry point for `python -m qa0_label`."""

import sys

from qa0_label.cli import main

if __name__ == "__main__":
    sys.exit(main())
