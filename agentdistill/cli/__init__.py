"""The `agentdistill` command line (see `main.py`)."""
