"""`python -m facelatent` runs the same `main()` as the console script."""

import sys

from facelatent.cli import main

sys.exit(main())
