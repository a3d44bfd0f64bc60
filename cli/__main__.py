"""``python -m cli``: the same as the ``conode`` console script."""

from cli.main import main

raise SystemExit(main())
