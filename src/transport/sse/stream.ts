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
}

export function createStreamRewriter(
  handlers: StreamHandlers,
  maxEventBytes: number = MAX_EVENT_BYTES,
): StreamRewriter {
  const scanner = new BlockScanner();
  let held: Buffer[] = [];
  let heldBytes = 0;
  let first = true;

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
        const raw = held.length === 0 ? piece : Buffer.concat([...held, piece]);
        held = [];
        heldBytes = 0;
        const replaced = block(raw);
        if (replaced !== undefined) out.push(replaced);
        start = end;
      }
      if (start < chunk.length) {
        heldBytes += chunk.length - start;
        if (heldBytes > maxEventBytes) {
          throw new GatewayError('ERR_UPSTREAM_PROTOCOL', {
            message: 'upstream sent an event larger than allowed',
          });
        }
        held.push(chunk.subarray(start));
      }
      return out;
    },
    end() {
      // An unfinished event is not an event (a conforming client drops it): never passed on.
      if (held.length > 0) handlers.onFiltered();
      held = [];
      heldBytes = 0;
      return [];
    },
  };
}
