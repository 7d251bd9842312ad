"""``python -m watchdog`` is the same CLI as ``videosdk-watchdog``."""

from watchdog.cli.main import main

raise SystemExit(main())
