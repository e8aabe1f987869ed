"""The gateway's HTTP endpoints, one module per group."""
