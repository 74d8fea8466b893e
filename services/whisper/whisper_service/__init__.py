"""Speech-to-text service of the ai-workflow stack (faster-whisper behind HTTP and WebSocket)."""

__version__ = "0.1.0"
