"""``python -m k8py.cli ...`` runs the ``k8py`` program (tests start servers this way)."""

from k8py.cli.main import main

raise SystemExit(main())
