from gridvit.cli import main

raise SystemExit(main())
