#!/usr/bin/env python3
"""spectrum-nas: `python run_search.py` searches the convolution spectrum (see README.md)."""

import sys

from nas.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
