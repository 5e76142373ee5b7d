import { z } from 'zod';

/** Control characters (C0, DEL, C1): never part of a name, a search or a key, and NUL breaks SQL text. */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** A one-line text field: zod refuses control characters with a message naming the field. */
export function plainText(field: string) {
  return z.string().refine((s) => !CONTROL.test(s), { message: `${field} must not contain control characters` });
}
