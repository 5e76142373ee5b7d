/**
 * The server's router type, for the client's end-to-end types. Type-only: no server code runs in
 * the SDK. In the published package this file is replaced by a flattened copy of the same type
 * (scripts/pack-sdk.ts), so installing the SDK installs none of the server's dependencies.
 */
export type { AppRouter } from '../server/routers/_app.js';
