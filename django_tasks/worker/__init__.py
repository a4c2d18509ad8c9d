"""The worker: consumer loop, pools, execution of one message, heartbeats."""
