"""Command-line options: the option table, the fast parser of the usual command line, click types."""
