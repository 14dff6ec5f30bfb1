"""`python -m autoscaler` is the `autoscaler` command."""

from autoscaler.cli import main

if __name__ == "__main__":
    main()
