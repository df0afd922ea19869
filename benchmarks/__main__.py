"""``python -m benchmarks [--size full|tiny] [--output PATH]``: print the table, write the JSON."""

from benchmarks.run import main

main()
