"""The serving application behind the gateway: its model list, HTTP calls and SSE streams."""
