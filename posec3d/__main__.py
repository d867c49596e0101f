"""`python -m posec3d ...` (and `torchrun -m posec3d train ...`) run the CLI."""
from posec3d.apps.cli import main

if __name__ == "__main__":
    main()
