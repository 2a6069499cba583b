/**
 * The rewriter of an HTTP+SSE transport GET stream: the upstream's events in, the client's out,
 * chunk by chunk (the relay keeps its backpressure; only the current unfinished event is held).
 * An allowlist of what the transport defines:
 *
 * - `endpoint`: its data is replaced by the gateway's own endpoint (`onEndpoint`); one the gateway
 *   cannot take over ends the stream (the client must never POST around the gateway).
 * - `message` (or no event name): its data goes through `onMessage`, which returns the data to send
 *   or undefined to drop the event.
 * - Anything else (other event names, comments, `id:`/`retry:` fields) is dropped; the gateway
 *   sends its own keepalive comments. Every dropped event is counted (`onFiltered`).
 *
 * Events are re-serialised as `event:` and `data:` lines only, so multi-line `data:` arrives as the
 * same data, on as many lines as it has.
 */
import { GatewayError } from '../../jsonrpc/errors.ts';
import { BlockScanner, parseBlock, serializeEvent } from '../../proxy/sse.ts';
import { MAX_EVENT_BYTES } from '../../proxy/sse-rewrite.ts';
import { BodyBuffer, BufferBudget } from '../../proxy/body-buffer.ts';

export interface StreamHandlers {
  /** The client's endpoint for the upstream's, or undefined when the gateway cannot take it over. */
  onEndpoint(data: string): string | undefined;
  /** The data to send for a message event, or undefined to drop it. */
  onMessage(data: string): string | undefined;
  /** An event was dropped. */
  onFiltered(): void;
}

export interface StreamRewriter {
  push(chunk: Buffer): Buffer[];
  end(): Buffer[];
  /** Gives back what an unfinished event holds (the stream ended early). */
  release(): void;
}

/** For rewriters built without a budget (tests): only maxEventBytes applies. */
const UNBOUNDED = new BufferBudget(Number.MAX_SAFE_INTEGER);

/**
 * `budget`: the unfinished event is held against it (limits.max_buffered_bytes), as every other
 * held body is, so many streams each with a large event cannot exhaust memory.
 */
export function createStreamRewriter(
  handlers: StreamHandlers,
  maxEventBytes: number = MAX_EVENT_BYTES,
  budget: BufferBudget = UNBOUNDED,
): StreamRewriter {
  const scanner = new BlockScanner();
  let held: BodyBuffer | undefined;
  let first = true;

  function release(): void {
    held?.release();
    held = undefined;
  }

  function hold(piece: Buffer): void {
    held ??= new BodyBuffer(budget, maxEventBytes);
    const refusal = held.push(piece);
    if (refusal === undefined) return;
    release();
    throw refusal === 'too-large'
      ? new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'upstream sent an event larger than allowed' })
      : new GatewayError('ERR_OVERLOADED', {
          message: 'an event cannot be held: the gateway holds too many bodies',
          status: 502,
        });
  }

  function block(raw: Buffer): Buffer | undefined {
    const fields = parseBlock(raw, first);
    first = false;
    if (fields.data === undefined) {
      // Comments and blank blocks dispatch nothing; a named event without data is still one.
      if (fields.event !== undefined) handlers.onFiltered();
      return undefined;
    }
    if (fields.event === 'endpoint') {
      const endpoint = handlers.onEndpoint(fields.data);
      if (endpoint === undefined) {
        throw new GatewayError('ERR_UPSTREAM_PROTOCOL', {
          message: 'upstream named an endpoint the gateway cannot take over',
        });
      }
      return Buffer.from(serializeEvent({ event: 'endpoint', data: endpoint }));
    }
    if (fields.event !== undefined && fields.event !== 'message') {
      handlers.onFiltered();
      return undefined;
    }
    const data = handlers.onMessage(fields.data);
    if (data === undefined) {
      handlers.onFiltered();
      return undefined;
    }
    return Buffer.from(serializeEvent({ event: 'message', data }));
  }

  return {
    push(chunk) {
      const out: Buffer[] = [];
      let start = 0;
      for (const end of scanner.scan(chunk)) {
        const piece = chunk.subarray(start, end);
        let raw = piece;
        if (held !== undefined) {
          hold(piece);
          raw = Buffer.from((held as BodyBuffer).bytes());
          release();
        }
        const replaced = block(raw);
        if (replaced !== undefined) out.push(replaced);
        start = end;
      }
      if (start < chunk.length) hold(chunk.subarray(start));
      return out;
    },
    end() {
      // An unfinished event is not an event (a conforming client drops it): never passed on.
      if (held !== undefined) handlers.onFiltered();
      release();
      return [];
    },
    release,
  };
}
