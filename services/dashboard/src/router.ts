import { useCallback, useEffect, useState } from 'react';

/** The dashboard's client routes; nginx answers each with index.html. */
export type Route = '/tickets' | '/terminals' | '/login';

export function routeFromPath(pathname: string): Route {
  if (pathname.startsWith('/terminals')) return '/terminals';
  if (pathname.startsWith('/login')) return '/login';
  return '/tickets';
}

/** The current route and a `navigate` that updates the address bar without reloading. */
export function useRoute(): [Route, (to: Route) => void] {
  const [route, setRoute] = useState<Route>(() => routeFromPath(window.location.pathname));
  useEffect(() => {
    const onPop = () => setRoute(routeFromPath(window.location.pathname));
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  const navigate = useCallback((to: Route) => {
    if (window.location.pathname !== to) window.history.pushState(null, '', to);
    setRoute(to);
  }, []);
  return [route, navigate];
}
