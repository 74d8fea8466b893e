import { defineConfig, loadEnv, type ProxyOptions } from 'vite';
import react from '@vitejs/plugin-react';

/**
 * The browser always uses relative URLs (`/api/...`, `/ws/...`), exactly as in
 * production behind nginx. In `npm run dev` and `vite preview` this server
 * plays nginx's part and forwards each route family to the service named by
 * VITE_TMUX_URL, VITE_ORCHESTRATOR_URL and VITE_WHISPER_URL, e.g.
 *
 *   VITE_TMUX_URL=http://127.0.0.1:5001 VITE_ORCHESTRATOR_URL=http://127.0.0.1:5002 npm run dev
 */
export function serviceProxy(env: Record<string, string>): Record<string, ProxyOptions> {
  const tmux = env.VITE_TMUX_URL || 'http://127.0.0.1:5001';
  const orchestrator = env.VITE_ORCHESTRATOR_URL || 'http://127.0.0.1:5002';
  const whisper = env.VITE_WHISPER_URL || 'http://127.0.0.1:8000';
  const toOrchestrator: ProxyOptions = { target: orchestrator, changeOrigin: true };
  return {
    '/api/orchestrator/': {
      target: orchestrator,
      changeOrigin: true,
      rewrite: (path) => path.replace(/^\/api\/orchestrator/, ''),
    },
    '/api/pending-tickets': toOrchestrator,
    '/api/active-tickets': toOrchestrator,
    '/api/completed-tickets': toOrchestrator,
    '/api/approve/': toOrchestrator,
    '/api/reject/': toOrchestrator,
    '/api/retry/': toOrchestrator,
    '/api/tickets/': toOrchestrator,
    '/api/whisper/': { target: whisper, changeOrigin: true },
    '/api/': { target: tmux, changeOrigin: false },
    '/ws/': { target: tmux, ws: true, changeOrigin: false },
  };
}

export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, process.cwd(), 'VITE_');
  const proxy = serviceProxy({ ...env, ...pickViteEnv(process.env) });
  return {
    plugins: [react()],
    server: { port: 3000, proxy },
    preview: { port: 3000, proxy },
    build: { sourcemap: false },
    test: {
      environment: 'node',
      include: ['src/**/*.test.ts'],
    },
  };
});

function pickViteEnv(source: NodeJS.ProcessEnv): Record<string, string> {
  const picked: Record<string, string> = {};
  for (const [key, value] of Object.entries(source)) {
    if (key.startsWith('VITE_') && value) picked[key] = value;
  }
  return picked;
}
