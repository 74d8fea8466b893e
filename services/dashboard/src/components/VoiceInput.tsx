import { useEffect, useRef, useState } from 'react';
import { describe, type ApiClient } from '../api';
import { whisperMode } from '../config';

type Phase =
  | { kind: 'idle' }
  | { kind: 'recording' }
  | { kind: 'transcribing' }
  | { kind: 'review'; text: string }
  | { kind: 'error'; message: string };

interface Props {
  api: ApiClient;
  /** Types the confirmed text into the active terminal; false when it could not. */
  onConfirm: (text: string) => boolean;
}

/** The recording format whisper accepts that this browser can produce (webm/opus first). */
function recorderMimeType(): string | undefined {
  const candidates = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus'];
  return candidates.find((type) => MediaRecorder.isTypeSupported(type));
}

/**
 * Microphone button: record, transcribe with `/api/whisper/transcribe`, show
 * the text for review, and type it into the terminal only on confirmation.
 * Shown only when speech-to-text answers its health probe (or VITE_WHISPER=on).
 */
export function VoiceInput({ api, onConfirm }: Props) {
  const [enabled, setEnabled] = useState(whisperMode === 'on');
  const [phase, setPhase] = useState<Phase>({ kind: 'idle' });
  const recorderRef = useRef<MediaRecorder | null>(null);

  useEffect(() => {
    if (whisperMode !== 'auto' || typeof MediaRecorder === 'undefined') return undefined;
    let cancelled = false;
    void api.whisperAvailable().then((ok) => !cancelled && setEnabled(ok));
    return () => {
      cancelled = true;
    };
  }, [api]);

  useEffect(() => () => recorderRef.current?.stream.getTracks().forEach((t) => t.stop()), []);

  if (!enabled || typeof MediaRecorder === 'undefined') return null;

  const start = async () => {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const mimeType = recorderMimeType();
      const recorder = new MediaRecorder(stream, mimeType ? { mimeType } : undefined);
      const chunks: Blob[] = [];
      recorder.ondataavailable = (event) => {
        if (event.data.size > 0) chunks.push(event.data);
      };
      recorder.onstop = async () => {
        stream.getTracks().forEach((track) => track.stop());
        recorderRef.current = null;
        setPhase({ kind: 'transcribing' });
        try {
          const audio = new Blob(chunks, { type: recorder.mimeType || 'audio/webm' });
          const result = await api.transcribe(audio, audio.type.includes('ogg') ? 'speech.ogg' : 'speech.webm');
          setPhase({ kind: 'review', text: result.text.trim() });
        } catch (error) {
          setPhase({ kind: 'error', message: `Transcription failed: ${describe(error)}` });
        }
      };
      recorderRef.current = recorder;
      recorder.start();
      setPhase({ kind: 'recording' });
    } catch (error) {
      setPhase({ kind: 'error', message: `Microphone unavailable: ${describe(error)}` });
    }
  };

  const stop = () => recorderRef.current?.stop();

  return (
    <div className="voice">
      {phase.kind === 'recording' ? (
        <button type="button" className="btn danger small" onClick={stop}>
          <span className="rec-dot" aria-hidden="true" />
          Stop recording
        </button>
      ) : (
        <button
          type="button"
          className="btn small"
          onClick={() => void start()}
          disabled={phase.kind === 'transcribing'}
          title="Dictate text for the active terminal"
        >
          <MicIcon />
          {phase.kind === 'transcribing' ? 'Transcribing…' : 'Voice'}
        </button>
      )}
      {phase.kind === 'review' || phase.kind === 'error' ? (
        <div className="voice-popover" role="dialog" aria-label="Voice input">
          {phase.kind === 'error' ? (
            <div className="notice error">{phase.message}</div>
          ) : (
            <>
              <label>
                Transcribed text (edit before sending)
                <textarea
                  value={phase.text}
                  rows={3}
                  onChange={(e) => setPhase({ kind: 'review', text: e.target.value })}
                />
              </label>
              <div className="actions">
                <button
                  type="button"
                  className="btn primary small"
                  disabled={!phase.text}
                  onClick={() => {
                    if (onConfirm(phase.text)) setPhase({ kind: 'idle' });
                    else setPhase({ kind: 'error', message: 'The active terminal is read-only or not connected.' });
                  }}
                >
                  Insert into terminal
                </button>
                <button type="button" className="btn ghost small" onClick={() => setPhase({ kind: 'idle' })}>
                  Discard
                </button>
              </div>
            </>
          )}
          {phase.kind === 'error' ? (
            <button type="button" className="btn ghost small" onClick={() => setPhase({ kind: 'idle' })}>
              Close
            </button>
          ) : null}
        </div>
      ) : null}
    </div>
  );
}

function MicIcon() {
  return (
    <svg width="14" height="14" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" strokeLinejoin="round">
      <rect x="9" y="3" width="6" height="11" rx="3" />
      <path d="M5 11a7 7 0 0 0 14 0M12 18v3" />
    </svg>
  );
}
