import { invalid } from '../../errors.js';
import type { UploadedFile } from './index.js';

/**
 * The files of a multipart procedure call, as spooled paths by field (routes.ts put them in
 * `ctx.uploads`): each file field must be one the procedure takes, and text where a file belongs
 * is refused. `describe` names what the fields may be, for the message.
 */
export function spooledFiles<F extends string>(
  form: FormData,
  uploads: Record<string, UploadedFile> | undefined,
  fields: readonly F[],
  describe: string,
): Partial<Record<F, string>> {
  if (!uploads) throw invalid('Send the files as multipart/form-data');
  for (const field of fields) {
    const text = form.get(field);
    if (typeof text === 'string' && text !== '') throw invalid(`${field}: expected a file, got text`, { field });
  }
  const files: Partial<Record<F, string>> = {};
  for (const [field, file] of Object.entries(uploads)) {
    if (!(fields as readonly string[]).includes(field)) throw invalid(`${field}: not ${describe}`, { field });
    files[field as F] = file.path;
  }
  return files;
}
