from sheer.cli.main import main

raise SystemExit(main())
