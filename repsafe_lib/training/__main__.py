"""`python -m repsafe_lib.training`: notebook 04's runs from the command line."""

from repsafe_lib.training.cli import main

raise SystemExit(main())
