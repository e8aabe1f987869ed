"""OpenAI's Responses API, stateless, served as chat completions (``convert``, ``stream``)."""
