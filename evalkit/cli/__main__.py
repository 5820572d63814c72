"""`python -m evalkit.cli` (the form `accelerate launch ... -m evalkit.cli train ...` needs)."""

from evalkit.cli import main

main()
