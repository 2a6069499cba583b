/**
 * Driving the HTTP+SSE transport by hand in tests: POSTs as a key, message events an upstream
 * writes, and reading a client's stream up to a marker the upstream writes after what it sent, so a
 * test sees exactly which events passed (and that nothing else did).
 */
import assert from 'node:assert/strict';
import { openStream } from './sse-stream.ts';
import type { OpenedStream } from './sse-stream.ts';
import type { RawSseUpstream } from './raw-sse-upstream.ts';

/** An upstream's side of one GET stream (raw-sse-upstream.ts). */
export type UpstreamSide = { res: { write(b: string): unknown } };

export interface SeenEvent {
  readonly event: string | undefined;
  /** The endpoint event's data as sent; any other event's parsed. */
  readonly data: unknown;
}

export function postAs(key: string, url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

/** A `message` event holding `message` as JSON. */
export const messageEvent = (message: unknown) => `event: message\ndata: ${JSON.stringify(message)}\n\n`;

/** A logging notification whose data is `marker`. */
export const markerEvent = (marker: string) =>
  messageEvent({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: marker } });

/** Has the upstream write a marker, and gives every event the client got before it. */
export async function drain(
  stream: OpenedStream,
  up: UpstreamSide,
  timeoutMs = 20_000,
): Promise<SeenEvent[]> {
  const marker = `m${Math.random()}`;
  up.res.write(markerEvent(marker));
  const seen: SeenEvent[] = [];
  for (;;) {
    const e = await stream.next(timeoutMs);
    if (e.event === 'endpoint') {
      seen.push({ event: e.event, data: e.data });
      continue;
    }
    const m = JSON.parse(e.data) as { params?: { data?: string } };
    if (m.params?.data === marker) return seen;
    seen.push({ event: e.event, data: m });
  }
}

/** The messages (not endpoint events) the client got before the marker. */
export async function messagesBefore(stream: OpenedStream, up: UpstreamSide): Promise<unknown[]> {
  return (await drain(stream, up)).filter((e) => e.event !== 'endpoint').map((e) => e.data);
}

/** The ids of those messages. */
export async function idsBefore(stream: OpenedStream, up: UpstreamSide): Promise<unknown[]> {
  return (await messagesBefore(stream, up)).map((m) => (m as { id?: unknown }).id);
}

/**
 * A test's clients of one gateway's HTTP+SSE transport over a hand-driven upstream: `open` a
 * stream (the gateway's endpoint, the upstream's side of it), `forwarded` POSTs and gives what the
 * upstream received. `at()` names the gateway and upstream, set up in a `before`; `opened` is
 * where streams go for an `afterEach` to close.
 */
export function legacyClients(
  at: () => { gateway: { url: string; mcpUrl: string }; upstream: RawSseUpstream },
  opened: OpenedStream[],
) {
  return {
    async open(key: string) {
      const { gateway, upstream } = at();
      const stream = await openStream(gateway.mcpUrl, key);
      opened.push(stream);
      const first = await stream.next();
      assert.equal(first.event, 'endpoint');
      const up = upstream.streams.at(-1)!;
      return { stream, endpoint: new URL(first.data, gateway.url).href, up, session: first.data };
    },
    async forwarded(key: string, endpoint: string, body: unknown): Promise<{ id: string }> {
      const arrived = at().upstream.nextPost();
      const res = await postAs(key, endpoint, body);
      assert.equal(res.status, 202, await res.clone().text());
      await res.text();
      return (await arrived) as { id: string };
    },
  };
}
