"""``python -m modelsign``."""

from .cli import main

main()
