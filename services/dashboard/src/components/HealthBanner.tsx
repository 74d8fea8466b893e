import { useCallback, useState } from 'react';
import { describe, type ApiClient } from '../api';
import { healthProblems } from '../tickets';
import type { OrchestratorHealth } from '../types';
import { usePolling } from '../usePolling';

export interface DaemonHealth {
  checked: boolean;
  health: OrchestratorHealth | null;
  problems: string[] | null;
}

/** Reads `/api/orchestrator/health` every few seconds while signed in. */
export function useDaemonHealth(api: ApiClient, enabled: boolean): DaemonHealth {
  const [state, setState] = useState<DaemonHealth>({ checked: false, health: null, problems: null });
  const check = useCallback(async () => {
    try {
      const health = await api.orchestratorHealth();
      if (!health || typeof health !== 'object' || !('status' in health)) {
        setState({ checked: true, health: null, problems: ['The health answer is not the expected JSON.'] });
        return;
      }
      setState({ checked: true, health, problems: healthProblems({ health }) });
    } catch (error) {
      setState({
        checked: true,
        health: null,
        problems: healthProblems({ error: `Health check failed: ${describe(error)}` }),
      });
    }
  }, [api]);
  usePolling(check, 5000, enabled);
  return state;
}

export function HealthBanner({ health }: { health: DaemonHealth }) {
  if (!health.problems) return null;
  return (
    <div className="banner danger" role="alert" data-testid="health-banner">
      <strong>Daemon unhealthy.</strong>
      <ul>
        {health.problems.map((problem) => (
          <li key={problem}>{problem}</li>
        ))}
      </ul>
    </div>
  );
}
