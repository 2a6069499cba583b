/**
 * A raw SSE reader for tests: GETs a URL with a key and hands out its events one by one, parsed
 * with the gateway's own parser (src/proxy/sse.ts), plus every byte received. Comments and blocks
 * without data (keepalives) are skipped by `next()` but kept in `raw`.
 */
import { SseParser } from '../../src/proxy/sse.ts';

export interface StreamEvent {
  readonly event: string | undefined;
  readonly data: string;
}

export interface OpenedStream {
  readonly status: number;
  readonly headers: Headers;
  /** Everything received so far, as text. */
  readonly raw: () => string;
  /** The next event with data (rejects after `timeoutMs`, or when the stream ends first). */
  next(timeoutMs?: number): Promise<StreamEvent>;
  close(): void;
}

export async function openStream(url: string, key: string): Promise<OpenedStream> {
  const controller = new AbortController();
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    signal: controller.signal,
  });
  const parser = new SseParser();
  const queue: StreamEvent[] = [];
  const waiters: (() => void)[] = [];
  let raw = '';
  let ended = false;
  const wake = () => {
    for (const w of waiters.splice(0)) w();
  };
  void (async () => {
    try {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
        raw += decoder.decode(chunk, { stream: true });
        for (const e of parser.push(Buffer.from(chunk))) {
          if (e.data !== undefined) queue.push({ event: e.event, data: e.data });
        }
        wake();
      }
    } catch {
      // aborted by close()
    }
    ended = true;
    wake();
  })();
  return {
    status: res.status,
    headers: res.headers,
    raw: () => raw,
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs;
      while (queue.length === 0) {
        if (ended) throw new Error('the stream ended');
        const left = deadline - Date.now();
        if (left <= 0) throw new Error('timed out waiting for an event');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return queue.shift() as StreamEvent;
    },
    close() {
      controller.abort();
    },
  };
}
