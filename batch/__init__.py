"""Offline batch inference: OpenAI batch files run on Ray Data LLM, resumable.

One job reads an OpenAI batch input file (one request per line), validates and routes
each line like the gateway does, runs the accepted ones on a vLLM engine per variant
through Ray Data LLM, and appends OpenAI batch output lines to a journal that a re-run
resumes from.

    lines      parse and validate one input line (OpenAI request schemas)
    requests   a validated line -> a prompt request for one variant (routing, media)
    prompts    chat templates -> the prompt text the engine sees
    records    OpenAI batch output lines: responses with usage, error lines
    journal    the output file: completed custom_ids, torn-tail repair, fsync'd appends
    engine     the engine seam (Protocol) and its result type
    ray_engine Ray Data LLM engines: vLLM processor or an existing Serve deployment
    runner     the job: plan, run, journal, progress and summary
    progress   the command line's progress bar (lines/s, tokens/s)
"""
