import { Zip, ZipDeflate, ZipPassThrough } from 'fflate';

/** One file of a zip: its path inside, its bytes, and whether deflating could help (gzipped files are stored). */
export interface ZipEntry {
  name: string;
  data: Uint8Array;
  compress: boolean;
}

/**
 * A zip written as it is read: entries are pulled from `entries` one at a time when the reader
 * wants more bytes, so memory holds one file and its compressed chunks, never the whole archive
 * (fflate's streaming Zip; ZIP64 past 4 GiB).
 */
export function zipStream(entries: AsyncIterable<ZipEntry>, mtime = new Date()): ReadableStream<Uint8Array> {
  const queue: Uint8Array[] = [];
  let finished = false;
  let failure: Error | undefined;
  const zip = new Zip((err, chunk, final) => {
    if (err) failure = err;
    else if (chunk.length) queue.push(chunk);
    if (final) finished = true;
  });
  const it = entries[Symbol.asyncIterator]();
  let ended = false;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        while (!queue.length && !finished && !failure) {
          if (ended) break;
          const next = await it.next();
          if (next.done) {
            ended = true;
            zip.end();
            continue;
          }
          const e = next.value;
          const file = e.compress ? new ZipDeflate(e.name, { level: 6 }) : new ZipPassThrough(e.name);
          file.mtime = mtime;
          zip.add(file);
          file.push(e.data, true);
        }
      } catch (err) {
        failure = err as Error;
      }
      if (failure) return controller.error(failure);
      if (queue.length) controller.enqueue(queue.shift()!);
      else if (finished) controller.close();
    },
    async cancel() {
      zip.terminate();
      await it.return?.();
    },
  });
}
