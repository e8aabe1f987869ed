"""Locust load tests for the gateway's OpenAI API.

``locustfile.py`` is what ``locust -f`` loads; the modules beside it are its parts:
``settings`` (``GEMMA_LOADTEST_*`` environment), ``mix`` (traffic mix by capability),
``prompts`` (the shipped prompt set), ``media`` (small PNG and WAV inputs), ``payloads``
(one request body per capability), ``stream`` (SSE reading and token timings),
``report`` (timings as locust request events), ``shapes`` (ramp, step, spike, soak) and
``soak_sampler`` (the gateway's RSS and open connections over a soak run).
"""
