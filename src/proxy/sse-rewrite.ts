/**
 * A streaming SSE rewriter for responses the gateway must read (list filtering, task ownership).
 * Pure: chunks in, chunks out, so the relay keeps its backpressure. Every block (see sse.ts) is
 * passed on in order as soon as it is complete, untouched unless it must be written again; only the
 * current unfinished block is held. A block with data is offered to `rewrite`; when it returns a
 * string, the block is replaced by an event with that data and the block's `event:`, `id:` and
 * `retry:` fields (comments in it go). Written again as well: a block with data whose bytes are not
 * UTF-8 (it was read with U+FFFD in place of each bad sequence, and the client gets what was read),
 * a block with data and a line ended by a lone CR (an LF-only client would read other data),
 * a block with an id when ids are sealed (`eventId`), and a first block after the characters `ï»¿`
 * (sse.ts parseBlock). `onEnd` may add events when the stream ends (after a blank line that ends an
 * unfinished block left as it is, which counts as no event). When `rewrite` returns DROP, the
 * event is not passed on: only its `id:` (sealed as any) and `retry:`. A client that takes the id of
 * an event without data (browsers' EventSource, httpx-sse) resumes after it; one that ignores such
 * blocks (eventsource-parser, under the TypeScript SDK) resumes from an earlier id, and the event is
 * dropped again.
 *
 * Cost when nothing is rewritten: a memchr-style scan for line ends, plus decoding the data of each
 * event for `rewrite`; untouched blocks leave as slices of the input chunk, not copies. A `bytes`
 * option is offered each block's raw bytes first, and may settle it without a parse: its
 * replacement, PASS (null: as it is), or undefined (`rewrite` decides, as without it).
 */
import { isUtf8 } from 'node:buffer';
import { GatewayError } from '../jsonrpc/errors.ts';
import { BlockScanner, bytesAt, parseBlock, serializeEvent, startsWithLatin1Bom } from './sse.ts';
import type { SseFields } from './sse.ts';
import { plainIdStart } from './sse-plain.ts';
import { BodyBuffer, BufferBudget } from './body-buffer.ts';

/** What `rewrite` returns for an event that must not reach the client (no JSON text is this). */
export const DROP = '\u0000drop';

/** Largest single event the rewriter holds (a list of thousands of tools is far smaller). */
export const MAX_EVENT_BYTES = 64 * 1024 * 1024;

export interface SseRewriter {
  /** The bytes to send now for this chunk (possibly none). */
  push(chunk: Buffer): Buffer[];
  /** The stream ended: what is left (an unfinished last block, rewritten if it has to be). */
  end(): Buffer[];
  /** Gives back the budget an unfinished block holds (the exchange ended early). */
  release(): void;
}

/** For rewriters built without a budget (tests): only maxEventBytes applies. */
const UNBOUNDED = new BufferBudget(Number.MAX_SAFE_INTEGER);

export interface SseRewriterOptions {
  readonly maxEventBytes?: number;
  readonly budget?: BufferBudget | undefined;
  /** Settles a block from its bytes when it can (see above); never for a block with a BOM. */
  readonly bytes?: ((raw: Buffer) => Buffer | null | undefined) | undefined;
  /**
   * The id the client gets for a block's non-empty `id:` (integrity/event-ids.ts): such a block is
   * always written again, with its data rewritten as any block's and this id.
   */
  readonly eventId?: ((id: string) => string) | undefined;
  /**
   * At the stream's end: the data of events to add, told whether the client got a point to resume
   * the stream at (an event with data and a non-empty id, resumesAt): without one, a client waiting
   * on a request of the stream has nothing to wait on.
   */
  readonly onEnd?: ((resumable: boolean) => readonly string[]) | undefined;
}

export function createSseRewriter(
  rewrite: (data: string) => string | undefined,
  options: SseRewriterOptions = {},
): SseRewriter {
  const maxEventBytes = options.maxEventBytes ?? MAX_EVENT_BYTES;
  const budget = options.budget ?? UNBOUNDED;
  const bytes = options.bytes;
  const eventId = options.eventId;
  const onEnd = options.onEnd;
  /**
   * The client got an event it can resume the stream at (each complete block, and an unfinished last
   * one, goes through replacement): one with data and a non-empty id.
   */
  let resumable = false;
  const scanner = new BlockScanner();
  // The unfinished block, copied into one buffer (a block in tiny chunks costs its bytes, no more).
  let held: BodyBuffer | undefined;
  let first = true;
  /** The last block left with an LF after its final CR (replacement). */
  let lfSent = false;
  /**
   * The bytes a push judged before it threw (a block, or the chunk's unfinished last one, could not
   * be held): end() sends them first, since the answers in them were taken as given (the stream's
   * end must not owe an error for a request whose answer the client never got).
   */
  let unsent: Buffer[] | undefined;

  function take(): Buffer {
    const raw = (held as BodyBuffer).bytes();
    held?.release();
    held = undefined;
    return raw;
  }

  /**
   * A plain block's replacement with its id sealed, when its bytes settle it (sse-plain.ts): the
   * sealed id spliced into the block as it is or as `bytes` rewrote it, with no parse. Undefined
   * when the parse must decide (nothing was settled, so nothing was answered).
   */
  function sealedPlain(raw: Buffer, seal: (id: string) => string): Buffer | undefined {
    if (bytes === undefined) return undefined;
    const idAt = plainIdStart(raw);
    if (idAt === -1) return undefined;
    const idEnd = raw.indexOf(LF, idAt);
    if (idEnd === idAt) return undefined;
    const settled = bytes(raw);
    if (settled === undefined) return undefined;
    first = false;
    // The id line comes before the data: a rewritten block keeps it where the raw one has it.
    const block = settled ?? raw;
    const sealed = Buffer.from(seal(raw.toString('utf8', idAt, idEnd)));
    // (A plain block has data: with its non-empty id, a point to resume at.)
    resumable = true;
    return Buffer.concat([block.subarray(0, idAt), sealed, block.subarray(idEnd)]);
  }

  /** A block's id as the client gets it: sealed when ids are (an empty one, a reset, as it is). */
  function sealedId(id: string | undefined): string | undefined {
    return id !== undefined && id !== '' && eventId !== undefined ? eventId(id) : id;
  }

  /** A block written again from its parse: its data rewritten as any block's, its id sealed. */
  function writtenAgain(fields: SseFields): Buffer {
    first = false;
    const data = fields.data === undefined ? undefined : (rewrite(fields.data) ?? fields.data);
    const id = sealedId(fields.id);
    if (data === DROP) return dropped(id, fields.retry);
    if (id !== undefined && id !== '' && data !== undefined) resumable = true;
    return Buffer.from(serializeEvent({ ...fields, id, data }));
  }

  /**
   * The replacement for a block, or undefined to pass it on as is. A complete block that leaves
   * ending with a CR (its blank line a lone CR, `data: x\n\r`, or a CRLF cut between its CR and LF)
   * leaves with an LF after it: to an LF-only reader (mcp-go, the Go SDK) a lone CR is no line end,
   * so `\r` + the next block's `event: message` was no blank line and the next event's data joined
   * this one's. When the LF of a CRLF then arrives, it goes no further (`lfSent`): the bytes the
   * client gets are the upstream's own in that case.
   */
  function replacement(raw: Buffer, complete = true): Buffer | undefined {
    if (lfSent) {
      lfSent = false;
      if (raw.length === 1 && raw[0] === LF) return EMPTY;
    }
    const out = judged(raw);
    const block = out ?? raw;
    // What the client gets decides whether it can resume: a dropped update leaves at most its id,
    // which a client reading events (eventsource-parser, under the SDKs) never sees without data.
    // With ids sealed, every block with one is written again (sealedPlain, writtenAgain), which tell
    // it without a scan; without, the block leaving is read for one.
    if (!resumable && eventId === undefined && mayHoldId(block) && resumesAt(block)) resumable = true;
    if (!complete || block[block.length - 1] !== CR) return out;
    lfSent = true;
    return Buffer.concat([block, LF_END]);
  }

  /** The replacement for a block as the gateway judged it, or undefined to pass it on as is. */
  function judged(raw: Buffer): Buffer | undefined {
    // An event with data of a type other than `message` (`event: other`, `event: message ` with a
    // space) is one the SDK clients never dispatch (the TypeScript SDK's reads only events without a
    // type or of type `message`, the Python SDK's only type `message`, which httpx-sse gives one
    // without), while mcp-go reads every event's data whatever its type. An answer in one was taken
    // as given: those clients waited for ever, and no error was owed. Dropped, as the HTTP+SSE
    // transport drops one (transport/sse/stream.ts), so its request is owed its error at the end.
    if (first || mayNameEvent(raw)) {
      const fields = parseBlock(raw, first);
      if (fields.data !== undefined && fields.event !== undefined && !isMessageType(fields.event)) {
        first = false;
        return dropped(sealedId(fields.id), fields.retry);
      }
    }
    // A first block after `ï»¿` is written as the gateway read it (sse.ts parseBlock); so is one
    // after a byte order mark, which the gateway and the SDK drop but clients that read lines as
    // they come (mcp-go, the Go SDK) keep as part of the first field's name: its data was lost.
    if (first && (startsWithLatin1Bom(raw) || bytesAt(raw, 0, BOM)))
      return writtenAgain(parseBlock(raw, true));
    if (eventId !== undefined && mayHoldId(raw)) {
      const plain = sealedPlain(raw, eventId);
      if (plain !== undefined) return plain;
      const fields = parseBlock(raw, first);
      if (fields.id !== undefined && fields.id !== '') return writtenAgain(fields);
    }
    // A block that starts with a byte order mark is the parse's (it drops it from the first block).
    if (bytes !== undefined && raw[0] !== 0xef) {
      const settled = bytes(raw);
      if (settled !== undefined) {
        first = false;
        return settled ?? undefined;
      }
    }
    const fields = parseBlock(raw, first);
    first = false;
    // A block without data with a line ended by a lone CR (`: keepalive\r\r`) made an LF-only client
    // read the lines after it as the rest of that line (a comment, an `event:` value): the next
    // event, an answer or the gateway's own error, never reached it. Its lone CRs become LFs, which
    // every other reader takes for the same line ends (a last CR is replacement's).
    if (fields.data === undefined) return endsLineAtCr(raw) ? lfLineEnds(raw) : undefined;
    const data = rewrite(fields.data);
    // Bytes that are not UTF-8 were read as U+FFFD: the client gets what was read, not bytes a
    // lenient decoder could read as something else. A line ended by a lone CR is written again too,
    // with LF: clients that split lines at LF only (the Go SDK's scanEvents, mcp-go) read it and the
    // lines after it as one, and would join into their data the lines the gateway read as others
    // (`data: {"params":{` CR `"uri":"<hidden>"` LF `data: }}` is an update naming no URI here).
    if (data === undefined)
      return isUtf8(raw) && !endsLineAtCr(raw) ? undefined : Buffer.from(serializeEvent(fields));
    if (data === DROP) return dropped(fields.id, fields.retry);
    return Buffer.from(serializeEvent({ ...fields, data }));
  }

  /**
   * What is left of a dropped event: its `id:` (an empty one too: it resets the client's resume
   * point) and `retry:`, which a client applies though it dispatches nothing; or nothing.
   */
  function dropped(id: string | undefined, retry: number | undefined): Buffer {
    return id === undefined && retry === undefined ? EMPTY : Buffer.from(serializeEvent({ id, retry }));
  }

  function hold(piece: Buffer): void {
    held ??= new BodyBuffer(budget, maxEventBytes);
    const refusal = held.push(piece);
    if (refusal === undefined) return;
    held.release();
    held = undefined;
    throw refusal === 'too-large'
      ? new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'upstream sent an event larger than allowed' })
      : new GatewayError('ERR_OVERLOADED', {
          message: 'an event cannot be held: the gateway holds too many bodies',
          status: 502,
        });
  }

  return {
    push(chunk) {
      const out: Buffer[] = [];
      let runStart = 0;
      let start = 0;
      try {
        for (const end of scanner.scan(chunk)) {
          if (held !== undefined) {
            hold(chunk.subarray(0, end));
            const raw = take();
            out.push(replacement(raw) ?? raw);
            runStart = end;
          } else {
            const replaced = replacement(chunk.subarray(start, end));
            if (replaced !== undefined) {
              if (start > runStart) out.push(chunk.subarray(runStart, start));
              out.push(replaced);
              runStart = end;
            }
          }
          start = end;
        }
        if (start > runStart) out.push(chunk.subarray(runStart, start));
        runStart = start;
        if (start < chunk.length) hold(chunk.subarray(start));
      } catch (err) {
        // What was judged before the throw (the blocks before the one that threw) goes first at end().
        if (start > runStart) out.push(chunk.subarray(runStart, start));
        unsent = out;
        throw err;
      }
      return out;
    },
    end() {
      const out: Buffer[] = unsent ?? [];
      unsent = undefined;
      /** The unfinished last block, when it leaves as it is. */
      let open: Buffer | undefined;
      if (held !== undefined) {
        const raw = take();
        const before = resumable;
        // An unfinished event is dropped by a conforming client, but is filtered all the same.
        const replaced = replacement(raw, false);
        if (replaced === undefined) {
          // As it is, it dispatches nothing (a rewritten one leaves whole): no event for a client.
          open = raw;
          resumable = before;
        }
        out.push(replaced ?? raw);
      }
      if (onEnd !== undefined) {
        const added = onEnd(resumable);
        // What is added starts after a blank line, not on the open block's last line (where
        // `: c` would make it a comment, `id:` an id, and the client would wait on).
        if (added.length > 0 && open !== undefined)
          out.push(open[open.length - 1] === LF ? LF_END : LINE_END);
        for (const data of added) out.push(Buffer.from(serializeEvent({ data })));
      }
      return out;
    },
    release() {
      held?.release();
      held = undefined;
    },
  };
}

const EMPTY = Buffer.alloc(0);
/** Ends an open block whose last line ended (with LF) / did not, or ended with a CR (CRLF, then LF). */
const LF_END = Buffer.from('\n');
const LINE_END = Buffer.from('\n\n');

/** Whether a line of the block may start with `id` (the parse then says whether it is the field). */
function mayHoldId(raw: Buffer): boolean {
  if (raw[0] === 0x69 && raw[1] === 0x64) return true;
  // After a byte order mark (the first block), or after a line end.
  if (raw[0] === 0xef && raw[3] === 0x69 && raw[4] === 0x64) return true;
  return raw.indexOf(NL_ID) !== -1 || raw.indexOf(CR_ID) !== -1;
}

const LF = 0x0a;

/**
 * Whether a CR in `raw` ends a line on its own (a byte other than LF follows it). A CR that is the
 * block's last byte is not counted: its LF may come with the next chunk, and replacement sends one
 * after it if not.
 */
function endsLineAtCr(raw: Buffer): boolean {
  for (let at = raw.indexOf(CR); at !== -1 && at < raw.length - 1; at = raw.indexOf(CR, at + 1))
    if (raw[at + 1] !== LF) return true;
  return false;
}

/** `raw` with each CR endsLineAtCr counts made an LF (a CRLF and a last CR stay). */
function lfLineEnds(raw: Buffer): Buffer {
  const out = Buffer.from(raw);
  for (let at = out.indexOf(CR); at !== -1 && at < out.length - 1; at = out.indexOf(CR, at + 1))
    if (out[at + 1] !== LF) out[at] = LF;
  return out;
}

const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** The event type every client dispatches: `message`, which an event without one, or with an empty one, has. */
const isMessageType = (type: string): boolean => type === '' || type === 'message';
/** The SDK servers' event line: a block that starts with it and holds no other is of that type. */
const MESSAGE_LINE = Buffer.from('event: message\n');
const EVENT_NAME = Buffer.from('event');
const NL_EVENT = Buffer.from('\nevent');
const CR_EVENT = Buffer.from('\revent');

/**
 * Whether a line of a block (not the stream's first, which is parsed) may name an event type other
 * than `message` (the parse then says): one starts with `event` and is not the SDK servers' line.
 */
function mayNameEvent(raw: Buffer): boolean {
  // From that line's LF on: a second `event:` line would start after it.
  const from = bytesAt(raw, 0, MESSAGE_LINE) ? MESSAGE_LINE.length - 1 : 0;
  if (from === 0 && bytesAt(raw, 0, EVENT_NAME)) return true;
  return raw.indexOf(NL_EVENT, from) !== -1 || raw.indexOf(CR_EVENT, from) !== -1;
}

const NL_ID = Buffer.from('\nid');
const CR_ID = Buffer.from('\rid');

/**
 * Whether a block gives a client a point to resume the stream at: a `data` field (an event the
 * client dispatches: eventsource-parser, under the SDKs, dispatches none without) and a non-empty
 * `id` (the SDKs resume at the last such id). Comments, `retry:`, an id without data are none.
 */
function resumesAt(raw: Buffer): boolean {
  let data = false;
  let id = false;
  let start = 0;
  while (start < raw.length) {
    let end = start;
    let colon = -1;
    while (end < raw.length && raw[end] !== LF && raw[end] !== CR) {
      if (colon === -1 && raw[end] === 0x3a) colon = end;
      end++;
    }
    const fieldEnd = colon === -1 ? end : colon;
    if (fieldIs(raw, start, fieldEnd, DATA_FIELD)) data = true;
    else if (fieldIs(raw, start, fieldEnd, ID_FIELD)) {
      // The value after the colon and one optional space (the last id line is the block's id).
      const value = colon === -1 ? end : raw[colon + 1] === 0x20 ? colon + 2 : colon + 1;
      id = value < end;
    }
    start = end + 1;
  }
  return data && id;
}

function fieldIs(raw: Buffer, start: number, end: number, name: Buffer): boolean {
  return end - start === name.length && bytesAt(raw, start, name);
}

const DATA_FIELD = Buffer.from('data');
const ID_FIELD = Buffer.from('id');
const CR = 0x0d;
