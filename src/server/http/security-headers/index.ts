import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';

export interface SecurityHeadersOptions {
  /** Origins allowed to frame the app (`frame-ancestors`), besides itself. */
  embedOrigins: readonly string[];
  /** COOP same-origin + COEP require-corp, so the viewer is crossOriginIsolated. */
  crossOriginIsolation: boolean;
  /** Extra `connect-src` entries (the API's allowed origins for a viewer served elsewhere). */
  connectSrc?: readonly string[];
  /** Decides HSTS per request. */
  isHttps: (c: Parameters<MiddlewareHandler>[0]) => boolean;
}

/** CSP, nosniff, Referrer-Policy, CORP, optional COOP/COEP; HSTS (1 year) only on https. No X-Frame-Options: frame-ancestors governs. */
export function securityHeaders(options: SecurityHeadersOptions): MiddlewareHandler {
  const inner = secureHeaders({
    contentSecurityPolicy: {
      defaultSrc: ["'self'"],
      scriptSrc: ["'self'", "'wasm-unsafe-eval'"],
      // NiiVue and React set inline styles; no inline scripts are allowed.
      styleSrc: ["'self'", "'unsafe-inline'"],
      imgSrc: ["'self'", 'data:', 'blob:'],
      fontSrc: ["'self'", 'data:'],
      connectSrc: ["'self'", 'blob:', 'data:', ...(options.connectSrc ?? [])],
      workerSrc: ["'self'", 'blob:'],
      objectSrc: ["'none'"],
      baseUri: ["'none'"],
      formAction: ["'self'"],
      frameAncestors: ["'self'", ...options.embedOrigins],
    },
    xFrameOptions: false,
    strictTransportSecurity: false,
    referrerPolicy: 'strict-origin-when-cross-origin',
    crossOriginResourcePolicy: 'same-origin',
    crossOriginOpenerPolicy: options.crossOriginIsolation ? 'same-origin' : false,
    crossOriginEmbedderPolicy: options.crossOriginIsolation ? 'require-corp' : false,
    xContentTypeOptions: true,
    originAgentCluster: true,
    xDnsPrefetchControl: true,
    xDownloadOptions: true,
    xPermittedCrossDomainPolicies: true,
    xXssProtection: false,
    removePoweredBy: true,
  });
  return async function securityHeaders(c, next) {
    // A route that sets its own CORP (volume files: cross-origin) keeps it.
    let ownCorp: string | null = null;
    await inner(c, async () => {
      await next();
      ownCorp = c.res.headers.get('cross-origin-resource-policy');
    });
    if (ownCorp) c.res.headers.set('Cross-Origin-Resource-Policy', ownCorp);
    if (options.isHttps(c)) c.res.headers.set('Strict-Transport-Security', 'max-age=31536000; includeSubDomains');
  };
}
