"""``python -m tfx_explain``: the ``tfx-explain`` command line."""

from tfx_explain.cli import main

raise SystemExit(main())
