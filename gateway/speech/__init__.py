"""Speech to text (``/v1/audio/transcriptions`` and ``/v1/audio/translations``) on any audio model.

vLLM's speech-to-text endpoint serves only models that implement its
``SupportsTranscription`` interface: the variants with the ``transcription`` capability
(Gemma 3n). Other audio-capable variants (Gemma 4) hear audio through chat only, so the
gateway serves their transcriptions as chat completions and maps the answers back.

    job        the form fields as one ``SpeechJob``; which candidates may serve it, in order
    languages  ISO-639-1 codes and the language names the instructions use
    chat       a job as a chat request; the chat answer (or stream) in OpenAI's shape
"""
