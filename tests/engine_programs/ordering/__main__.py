# The project directory is on sys.path for the program and for the engine's
# dynamic-provider process alike; mypy checks this file from the checkout.
from ordering_provider import program  # type: ignore[import-not-found]

program()
