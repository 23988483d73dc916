"""``python -m shadowguard``: the same as the ``shadowguard`` command."""

from __future__ import annotations

import sys

from shadowguard._cli import main

sys.exit(main())
