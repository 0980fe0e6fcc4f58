"""`python -m cli`: the `edgemaxx` command, for processes started without the console script."""

from cli.app import main

main()
