from deepernets.cli import main

raise SystemExit(main())
