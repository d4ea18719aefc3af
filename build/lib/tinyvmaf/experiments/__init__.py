"""DVC experiments: running the queue reliably (``tinyvmaf queue``)."""
