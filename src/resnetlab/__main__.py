"""``python -m resnetlab`` (also what ``torchrun -m resnetlab`` runs)."""

import sys

from resnetlab.cli import main

sys.exit(main())
