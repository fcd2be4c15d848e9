"""`python -m defendr_cli` runs the CLI (also the entry point torchrun uses)."""

from defendr_cli.cli.app import main

if __name__ == "__main__":
    main()
