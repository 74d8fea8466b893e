import { useEffect, useRef } from 'react';

/**
 * Calls `task` now and then every `intervalMs` while mounted and `enabled`;
 * never overlaps two calls. Polling pauses while the tab is hidden and
 * catches up as soon as it is shown again.
 */
export function usePolling(task: () => Promise<void>, intervalMs: number, enabled = true): void {
  const taskRef = useRef(task);
  useEffect(() => {
    taskRef.current = task;
  }, [task]);

  useEffect(() => {
    if (!enabled) return undefined;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let stopped = false;
    let running = false;
    const tick = async () => {
      if (stopped || running) return;
      if (timer !== null) clearTimeout(timer);
      timer = null;
      running = true;
      try {
        await taskRef.current();
      } finally {
        running = false;
        if (!stopped) timer = setTimeout(tick, intervalMs);
      }
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible') void tick();
    };
    void tick();
    document.addEventListener('visibilitychange', onVisible);
    return () => {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisible);
    };
  }, [intervalMs, enabled]);
}
