"""Traces, metrics and logs of the gateway: each built by the app factory, none at import."""
