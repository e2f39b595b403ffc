"""`python -m bot` is `lawbot`."""

from bot.cli import main

main()
