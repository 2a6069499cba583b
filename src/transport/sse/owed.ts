/**
 * The requests an HTTP+SSE GET stream owes an answer. On this transport a POST is accepted (202) and
 * its requests are answered on the GET stream of its session, so at shutdown that stream, not the
 * POST, holds them: ended at once when the shutdown began, its requests in flight were given no
 * grace, and ended bare, no answer at all (an SDK client rejects them only when it notices the
 * stream closed; a client that reopens its stream elsewhere waited for them until its timeout).
 *
 * The stream remembers (per process: the POST must reach the replica holding the stream, as the
 * gateway's own answers must, transport.ts) the requests of each POST its upstream accepted, and
 * forgets each as its answer passes. The shutdown lets a stream that owes answers run until it owes
 * none (`whenSettled`) or the grace ends, when each still owed gets the shutdown's error (`errors`).
 * Bounded: the oldest owed are forgotten first past MAX_OWED, as is a request whose id is longer
 * than cancels.ts remembers (they get no error), and an answer that arrives before its POST's
 * acceptance is remembered (the last 1,024, as a stream remembers its answers) so it is not owed
 * again.
 */
import { MAC_CHARS } from '../../integrity/request-tag.ts';
import type { Untagged } from '../../integrity/request-tag.ts';
import type { JsonRpcId } from '../../jsonrpc/message.ts';
import type { GatewayError } from '../../jsonrpc/errors.ts';
import { serializeEvent } from '../../proxy/sse.ts';
import { rememberable } from '../../integrity/cancels.ts';
import { StreamAnswers } from '../../integrity/response-ids.ts';

/** Requests a stream owes at most (early answers: as many as a stream remembers, StreamAnswers). */
export const MAX_OWED = 1024;

export class OwedAnswers {
  /** Client ids by the MAC of their tag, oldest first. */
  private readonly owed = new Map<string, JsonRpcId>();
  /**
   * MACs answered while not owed (the answer passed before its POST's 202 was read), the last
   * MAX_STREAM_ANSWERED.
   */
  private readonly early = new StreamAnswers();
  private settled: (() => void) | undefined = undefined;
  /**
   * POSTs of the stream's session this process is receiving or forwarding, not yet closed: the
   * stream may yet owe their requests (a body still coming when the shutdown began is forwarded in
   * its grace, and its answer, or the gateway's own refusal, comes on this stream).
   */
  private posts = 0;

  get size(): number {
    return this.owed.size;
  }

  /** A POST of the stream's session began; `left` once it closed (after its acceptance, if any). */
  entered(): void {
    this.posts++;
  }

  left(): void {
    this.posts--;
    this.settle();
  }

  /** The upstream accepted a POST of these requests (tag → what it carries): their answers are owed. */
  accepted(tags: ReadonlyMap<string, Untagged>): void {
    for (const [tag, untagged] of tags) {
      const mac = tag.slice(-MAC_CHARS);
      // An id as long as a body is not held (cancels.ts): that request gets no error at shutdown.
      if (this.early.forget(mac) || !rememberable(untagged.clientId)) continue;
      if (this.owed.size >= MAX_OWED) this.owed.delete(this.owed.keys().next().value as string);
      this.owed.set(mac, untagged.clientId);
    }
  }

  /**
   * The upstream accepted the client's `notifications/cancelled` of the request with this id: its
   * receiver sends no answer (the MCP cancellation utility), so none is owed. Still owed, it held a
   * stream a reload keeps for its answers open for good, under the key as it was before the reload.
   */
  cancelled(clientId: JsonRpcId): void {
    let forgot = false;
    for (const [mac, id] of this.owed) {
      if (id !== clientId) continue;
      this.owed.delete(mac);
      forgot = true;
    }
    if (forgot) this.settle();
  }

  /** The answer to the request whose tag ends with `mac` passed on the stream. */
  answered(mac: string): void {
    if (!this.owed.delete(mac)) {
      this.early.add(mac);
      return;
    }
    this.settle();
  }

  private settle(): void {
    if (this.owed.size > 0 || this.posts > 0 || this.settled === undefined) return;
    const settled = this.settled;
    this.settled = undefined;
    // Not from inside the rewriter that passed the answer: the stream is ended after it.
    setImmediate(settled);
  }

  /**
   * Calls `settled` once the stream owes nothing and no POST of its session is open (false, and no
   * call, when that is so now).
   */
  whenSettled(settled: () => void): boolean {
    if (this.owed.size === 0 && this.posts === 0) return false;
    this.settled = settled;
    return true;
  }

  /** The events answering every request still owed with `error`, which are then owed no more. */
  errors(error: GatewayError): Buffer[] {
    if (this.owed.size === 0) return [];
    const body = { code: error.rpcCode, message: error.message };
    const out: Buffer[] = [];
    for (const id of this.owed.values()) {
      const data = JSON.stringify({ jsonrpc: '2.0', id, error: body });
      out.push(Buffer.from(serializeEvent({ event: 'message', data })));
    }
    this.owed.clear();
    this.settled = undefined;
    return out;
  }
}
