// The embedded database's own thread (#29): PGlite — PostgreSQL in WebAssembly — opens and runs
// its SQL here, so neither its start (≈ 0.7 s of WebAssembly on a warm restart) nor a query's
// execution holds the server's event loop. The main thread's side is pglite-thread.ts; the
// messages are pglite-protocol.ts. Kept free of the server's modules: this thread loads only PGlite.
import { parentPort, workerData } from 'node:worker_threads';
import { PGlite, type Transaction } from '@electric-sql/pglite';
import { type FromEngine, type OpenOptions, type ToEngine, serializeError } from './pglite-protocol.js';

const port = parentPort!;
const { dataDir, moreStartParams } = workerData as OpenOptions;
const send = (m: FromEngine) => port.postMessage(m);

/** A rollback asked for by the main thread: thrown out of PGlite's transaction callback, not an error. */
const ROLLBACK = Symbol('rollback');
const transactions = new Map<number, { tx: Transaction; end: (commit: boolean) => void; closed: Promise<void> }>();
const listening = new Map<string, Promise<() => Promise<void>>>();
let nextTransaction = 1;

const opening = PGlite.create({ ...(dataDir ? { dataDir } : {}), startParams: [...PGlite.defaultStartParams, ...moreStartParams] });
opening.then(
  () => send({ kind: 'open' }),
  (err: unknown) => send({ kind: 'open', error: serializeError(err) }),
);

async function handle(pglite: PGlite, m: ToEngine): Promise<unknown> {
  const on = m.tx === undefined ? pglite : transactions.get(m.tx)?.tx;
  if (!on) throw new Error('this transaction has already ended');
  switch (m.op) {
    case 'query':
      return await on.query(m.sql, m.params, m.options);
    case 'exec':
      return await on.exec(m.sql, m.options);
    case 'begin':
      return await begin(pglite);
    case 'end': {
      const t = transactions.get(m.tx!)!;
      transactions.delete(m.tx!);
      t.end(m.commit);
      await t.closed;
      return undefined;
    }
    case 'listen': {
      // One LISTEN per channel, kept as its promise: a 'listen' right after an 'unlisten' of the
      // same channel makes a new one rather than find the old one still there.
      let subscribed = listening.get(m.channel);
      if (!subscribed) {
        // Sent from inside the query that committed the NOTIFY, so it reaches the main thread
        // before that query's answer (as PGlite's own listeners are called before it returns).
        subscribed = pglite.listen(m.channel, (payload) => send({ kind: 'notification', channel: m.channel, payload }));
        listening.set(m.channel, subscribed);
        subscribed.catch(() => listening.delete(m.channel));
      }
      await subscribed;
      return undefined;
    }
    case 'unlisten': {
      const subscribed = listening.get(m.channel);
      listening.delete(m.channel);
      if (subscribed) await (await subscribed)();
      return undefined;
    }
    case 'close':
      if (!pglite.closed) await pglite.close();
      return undefined;
  }
}

/** Enters PGlite's exclusive transaction and answers once inside it; it ends on an 'end' message. */
function begin(pglite: PGlite): Promise<number> {
  const id = nextTransaction++;
  return new Promise<number>((entered, failed) => {
    let end!: (commit: boolean) => void;
    const ending = new Promise<boolean>((r) => (end = r));
    const closed = pglite
      .transaction(async (tx) => {
        transactions.set(id, { tx, end, closed });
        entered(id);
        if (!(await ending)) throw ROLLBACK;
      })
      .then(
        () => undefined,
        (err: unknown) => {
          transactions.delete(id);
          failed(err); // BEGIN itself failed: nothing was entered (a no-op once entered)
          if (err !== ROLLBACK) throw err;
        },
      );
    closed.catch(() => {}); // its error is the 'end' message's answer
  });
}

const answer = (id: number, value: unknown) => {
  try {
    send({ kind: 'reply', id, value });
  } catch (err) {
    // A value that cannot cross (structured clone): the statement's caller gets the reason; the thread goes on.
    send({
      kind: 'reply',
      id,
      error: serializeError(new Error(`the answer cannot cross from the embedded database's thread: ${(err as Error).message}`)),
    });
  }
};

port.on('message', (m: ToEngine) => {
  opening
    .then((pglite) => handle(pglite, m))
    .then(
      (value) => answer(m.id, value),
      (err: unknown) => send({ kind: 'reply', id: m.id, error: serializeError(err) }),
    );
});
