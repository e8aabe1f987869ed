"""Jinja chat templates that engines load by name (``chat_template: gemma3_tools``)."""
