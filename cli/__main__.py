"""``python -m cli``: the same as the ``conode`` console script."""

from cli.entry import main

raise SystemExit(main())
