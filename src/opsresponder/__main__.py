from opsresponder.cli import main

raise SystemExit(main())
