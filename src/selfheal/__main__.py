"""`python -m selfheal` runs the command line."""

from selfheal.cli.app import main

main()
