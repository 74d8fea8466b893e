"""One streaming transcription session over a WebSocket.

The client sends 16 kHz mono s16le PCM as binary frames and may send the text frame
``{"type": "end"}`` to flush; the server answers with text frames
``{"type": "partial"|"final", "text": ..., "index": n, "duration": s}`` and, on trouble,
``{"type": "error", "detail": ...}``. Receiving never waits for a partial transcription: a
partial runs in the background and is dropped when the final of its utterance has already
been sent; finals are sent in order.

Example (client side)::

    async with websockets.connect("ws://host/api/whisper/stream?language=en") as ws:
        await ws.send(pcm_chunk)
        await ws.send('{"type": "end"}')
        async for message in ws: print(message)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from whisper_service.audio import SAMPLE_RATE, pcm_s16le_to_float
from whisper_service.engine import ModelLoadError
from whisper_service.gate import ServerBusy
from whisper_service.models import StreamError, StreamResult
from whisper_service.segmenter import Cut, UtteranceSegmenter
from whisper_service.service import SpeechService

log = logging.getLogger(__name__)


class StreamSession:
    def __init__(self, websocket: WebSocket, speech: SpeechService, language: str | None) -> None:
        settings = speech.settings
        self.websocket = websocket
        self.speech = speech
        self.language = language
        self.segmenter = UtteranceSegmenter(
            silence_ms=settings.stream_silence_ms,
            partial_interval_ms=settings.stream_partial_interval_ms,
            max_seconds=settings.stream_max_utterance_seconds,
        )
        self._carry = b""
        self._partial_task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._received_seconds = 0.0
        self._finals_sent = 0

    async def run(self) -> None:
        """Serve until the client disconnects or sends ``{"type": "end"}``."""
        try:
            while True:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("bytes") is not None:
                    if await self._on_audio(message["bytes"]):
                        return
                elif message.get("text") is not None and await self._on_text(message["text"]):
                    await self.websocket.close(code=1000)
                    return
        except WebSocketDisconnect:
            return
        finally:
            if self._partial_task is not None:
                self._partial_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._partial_task

    async def _on_audio(self, chunk: bytes) -> bool:
        """Feed a PCM frame; ``True`` when the session had to end (too long)."""
        data = self._carry + chunk
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        samples = pcm_s16le_to_float(data[:usable])
        self._received_seconds += len(samples) / SAMPLE_RATE
        if self._received_seconds > self.speech.settings.max_duration_seconds:
            await self._send(StreamError(detail="stream longer than WHISPER_MAX_DURATION_SECONDS"))
            await self.websocket.close(code=1009)
            return True
        cuts = await asyncio.to_thread(self.segmenter.push, samples)
        for cut in cuts:
            await (self._final(cut) if cut.final else self._start_partial(cut))
        return False

    async def _on_text(self, text: str) -> bool:
        """Handle a control frame; ``True`` when the session should end."""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError):
            kind = None
        if kind != "end":
            await self._send(StreamError(detail='text frames must be {"type": "end"}'))
            return False
        cut = await asyncio.to_thread(self.segmenter.flush)
        if cut is not None:
            await self._final(cut)
        return True

    async def _start_partial(self, cut: Cut) -> None:
        if self._partial_task is None or self._partial_task.done():
            self._partial_task = asyncio.create_task(self._partial(cut))

    async def _partial(self, cut: Cut) -> None:
        try:
            transcript = await self.speech.transcribe_samples(
                cut.samples, language=self.language, beam_size=1
            )
        except (ServerBusy, ModelLoadError):
            return  # partials are best effort; the final reports what went wrong
        if cut.index >= self._finals_sent and transcript.text:
            await self._send(_result("partial", cut, transcript.text))

    async def _final(self, cut: Cut) -> None:
        if self._partial_task is not None and not self._partial_task.done():
            await self._partial_task  # keep results in order and the model to one job at once
        self._finals_sent = cut.index + 1  # from here on, partials of this utterance are stale
        try:
            transcript = await self.speech.transcribe_samples(cut.samples, language=self.language)
        except ServerBusy as exc:
            retry = self.speech.settings.retry_after_seconds
            await self._send(StreamError(detail=f"busy: {exc}", retry_after=retry))
            return
        except ModelLoadError as exc:
            await self._send(StreamError(detail=str(exc)))
            return
        await self._send(_result("final", cut, transcript.text))

    async def _send(self, message: StreamResult | StreamError) -> None:
        async with self._send_lock:
            await self.websocket.send_text(message.model_dump_json(exclude_none=True))


def _result(kind: str, cut: Cut, text: str) -> StreamResult:
    return StreamResult.model_validate(
        {"type": kind, "text": text, "index": cut.index, "duration": len(cut.samples) / SAMPLE_RATE}
    )
