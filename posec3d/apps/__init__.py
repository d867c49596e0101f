"""The command-line interface and every user-facing command."""
