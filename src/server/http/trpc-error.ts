import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** JSON-RPC codes tRPC uses for the HTTP statuses our middleware answers with. */
const RPC_CODES: Record<string, number> = {
  BAD_REQUEST: -32600,
  FORBIDDEN: -32003,
  PAYLOAD_TOO_LARGE: -32413,
  TOO_MANY_REQUESTS: -32029,
  SERVICE_UNAVAILABLE: -32603,
};

/**
 * An error answered by Hono middleware before tRPC runs, in tRPC's error shape, so the client
 * (and the SDK) read every error the same way.
 */
export function trpcErrorResponse(c: Context, status: ContentfulStatusCode, code: keyof typeof RPC_CODES | string, message: string) {
  return c.json({ error: { message, code: RPC_CODES[code] ?? -32603, data: { code, httpStatus: status } } }, status);
}
