/**
 * Server-Sent Events framing (WHATWG HTML, "event stream interpretation"), incremental and byte
 * exact. The stream is cut into blocks: the lines of one event up to and including the blank line
 * that ends it. Lines end with CRLF, LF or CR, and a chunk may end anywhere, including between the
 * CR and LF of one line ending. Each block keeps its raw bytes, so a proxy can pass it on untouched.
 *
 * Fields: `data` (lines joined with LF), `event`, `id` (ignored when it contains NUL), `retry` (ASCII
 * digits only); lines starting with `:` are comments; a line without `:` is a field with an empty
 * value; one space after the colon is dropped; unknown fields are ignored. A block without a `data`
 * field dispatches no event (`data` is undefined).
 */

const LF = 0x0a;
const CR = 0x0d;

export interface SseFields {
  /** The `data` lines joined with LF; undefined when the block has no data field. */
  readonly data: string | undefined;
  readonly event: string | undefined;
  readonly id: string | undefined;
  readonly retry: number | undefined;
}

export interface SseEvent extends SseFields {
  /** The block's bytes exactly as received, including the line ending(s) that closed it. */
  readonly raw: Buffer;
}

/**
 * Finds where blocks end. `scan` reports, for one chunk, the offsets just past each block's closing
 * blank line; the bytes after the last offset belong to the next, still open, block. A lone LF that
 * completes a CRLF split across chunks right after a block's end is reported as a zero-field block
 * of its own (offset 1), so every byte belongs to exactly one block.
 */
export class BlockScanner {
  /** No byte of the current line seen yet. */
  private lineStart = true;
  /** The last byte seen was a CR: an LF next finishes that same line ending. */
  private afterCR = false;
  /** ...and that CR closed a block, which was reported at once: its LF stands alone. */
  private blockEndedAtCR = false;

  /** Offsets in `chunk` just past each block completed in it, in order. */
  scan(chunk: Buffer): number[] {
    const ends: number[] = [];
    const n = chunk.length;
    if (n === 0) return ends;
    let i = 0;
    if (this.afterCR) {
      this.afterCR = false;
      if (chunk[0] === LF) {
        i = 1;
        if (this.blockEndedAtCR) ends.push(1);
      }
    }
    this.blockEndedAtCR = false;
    let nextLF = -2;
    let nextCR = -2;
    while (i < n) {
      if (nextLF !== -1 && nextLF < i) nextLF = chunk.indexOf(LF, i);
      if (nextCR !== -1 && nextCR < i) nextCR = chunk.indexOf(CR, i);
      const eol = nextCR === -1 ? nextLF : nextLF === -1 ? nextCR : Math.min(nextLF, nextCR);
      if (eol === -1) {
        this.lineStart = false;
        break;
      }
      const empty = this.lineStart && eol === i;
      let after = eol + 1;
      if (chunk[eol] === CR) {
        if (after === n) this.afterCR = true;
        else if (chunk[after] === LF) after++;
      }
      if (empty) {
        ends.push(after);
        if (this.afterCR) this.blockEndedAtCR = true;
      }
      this.lineStart = true;
      i = after;
    }
    return ends;
  }
}

const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
const LATIN1_BOM = '\u00ef\u00bb\u00bf';
const LATIN1_BOM_BYTES = Buffer.from(LATIN1_BOM, 'utf8');
const BOM_BYTES = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Whether a stream's first block starts (after a byte order mark, if any) with `ï»¿`, which a
 * client drops and parseBlock(raw, true) too: such a block is written again from its parse, so that
 * no client reads it with its own rule.
 */
export function startsWithLatin1Bom(raw: Uint8Array): boolean {
  const at = bytesAt(raw, 0, BOM_BYTES) ? BOM_BYTES.length : 0;
  return bytesAt(raw, at, LATIN1_BOM_BYTES);
}

/** Whether `raw` holds `prefix` at `at`. */
export function bytesAt(raw: Uint8Array, at: number, prefix: Uint8Array): boolean {
  if (raw.length < at + prefix.length) return false;
  for (let k = 0; k < prefix.length; k++) if (raw[at + k] !== prefix[k]) return false;
  return true;
}

/**
 * Parses the fields of one block (its raw bytes or text); `stripBom` for the stream's first block,
 * which drops a byte order mark and then the characters `ï»¿` (a BOM read as Latin-1), as the
 * official SDK clients read a stream: TextDecoderStream drops the first, eventsource-parser the
 * second. Read otherwise, a `data:` after them would reach such a client unjudged.
 */
export function parseBlock(raw: Buffer | string, stripBom = false): SseFields {
  let text = typeof raw === 'string' ? raw : decoder.decode(raw);
  if (stripBom && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (stripBom && text.startsWith(LATIN1_BOM)) text = text.slice(LATIN1_BOM.length);
  let data: string | undefined;
  let event: string | undefined;
  let id: string | undefined;
  let retry: number | undefined;
  let pos = 0;
  const n = text.length;
  while (pos < n) {
    // The line's end and its first colon, in one pass over the line (a search for the colon past
    // the line's end would read the rest of the block once per line: quadratic in colon-less lines).
    let eol = pos;
    let colon = -1;
    while (eol < n) {
      const c = text.charCodeAt(eol);
      if (c === LF || c === CR) break;
      if (c === 0x3a /* : */ && colon === -1) colon = eol;
      eol++;
    }
    if (eol > pos && colon !== pos) {
      let field: string;
      let value: string;
      if (colon === -1) {
        field = text.slice(pos, eol);
        value = '';
      } else {
        field = text.slice(pos, colon);
        const start = text.charCodeAt(colon + 1) === 0x20 && colon + 1 < eol ? colon + 2 : colon + 1;
        value = text.slice(start, eol);
      }
      switch (field) {
        case 'data':
          data = data === undefined ? value : `${data}\n${value}`;
          break;
        case 'event':
          event = value;
          break;
        case 'id':
          if (!value.includes('\0')) id = value;
          break;
        case 'retry':
          if (/^[0-9]+$/.test(value)) retry = Number(value);
          break;
      }
    }
    pos = eol;
    if (pos < n) pos += text.charCodeAt(pos) === CR && text.charCodeAt(pos + 1) === LF ? 2 : 1;
  }
  return { data, event, id, retry };
}

/** An incremental parser: push chunks, get complete blocks; end() returns the unfinished one. */
export class SseParser {
  private readonly scanner = new BlockScanner();
  private held: Buffer[] = [];
  private first = true;

  push(chunk: Buffer): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    for (const end of this.scanner.scan(chunk)) {
      const piece = chunk.subarray(start, end);
      const raw = this.held.length === 0 ? piece : Buffer.concat([...this.held, piece]);
      this.held = [];
      events.push(this.block(raw));
      start = end;
    }
    if (start < chunk.length) this.held.push(chunk.subarray(start));
    return events;
  }

  /** The bytes of a block the stream ended in the middle of (an event the spec says to drop). */
  end(): SseEvent[] {
    if (this.held.length === 0) return [];
    const raw = Buffer.concat(this.held);
    this.held = [];
    return [this.block(raw)];
  }

  private block(raw: Buffer): SseEvent {
    const fields = parseBlock(raw, this.first);
    this.first = false;
    return { ...fields, raw };
  }
}

/**
 * Serialises an event: `event:`, `id:`, `retry:` and one `data:` line per line of data, then the
 * blank line. Field values must not contain CR or LF (data may: it is split into lines).
 */
export function serializeEvent(fields: Partial<SseFields>): string {
  let out = '';
  if (fields.event !== undefined) out += `event: ${oneLine(fields.event)}\n`;
  if (fields.id !== undefined) out += `id: ${oneLine(fields.id)}\n`;
  if (fields.retry !== undefined) out += `retry: ${Math.trunc(fields.retry)}\n`;
  if (fields.data !== undefined) {
    for (const line of fields.data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`;
  }
  return out + '\n';
}

function oneLine(value: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError('serializeEvent: event and id must not contain CR or LF');
  return value;
}
