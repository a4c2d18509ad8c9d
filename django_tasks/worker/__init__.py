"""The worker: consumer loop, pools, running claimed messages (see execution.py), heartbeats."""
