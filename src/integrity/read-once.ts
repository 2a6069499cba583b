/**
 * The members response matching (restore.ts) reads in a message from the upstream, each written
 * once. JSON.parse keeps the last member of a repeated key, other readers the first: a message that
 * repeats one of them would show a first-wins client a value the gateway never judged (another
 * exchange's tag as the request a cancellation names, a subscription id signed for another
 * principal, a tag as an error's id) behind a harmless last one. Such a message is refused, as the
 * byte paths (small-match.ts, event-match.ts, policy/list-scan.ts) hand it to the parse and as a
 * repeated id already was. Members the matching does not read may repeat: they decide nothing here.
 */
import { DUPLICATE, memberSpan } from './json-spans.ts';

/** Keys read in an object, each with the keys read in its value when that is an object. */
export type ReadKeys = ReadonlyMap<string, ReadKeys | undefined>;

/** Whether none of `keys` repeats in the object at `objectStart`, nor below them. Never throws. */
export function readOnce(text: string, objectStart: number, keys: ReadKeys): boolean {
  for (const [key, inner] of keys) {
    const span = memberSpan(text, objectStart, key);
    if (span === DUPLICATE) return false;
    if (span !== undefined && inner !== undefined && !readOnce(text, span.start, inner)) return false;
  }
  return true;
}

/**
 * Whether `text` may name a request or subscription below its top level: only through a key spelled
 * `requestId` or `_meta`, plainly or with a `\u` escape (the other escapes spell no letter of them).
 * Text without any of them names nothing a repeat could hide, and skips the walks.
 */
export function mayNameBelow(text: string): boolean {
  return text.includes('_meta') || text.includes('requestId') || text.includes('\\u');
}

/**
 * Whether `text` may hold a notification that repeats its `method`, an update's `uri` or a task
 * status's `taskId`: the key `"method"` written more than once, or `uri` or `taskId` anywhere
 * (escaped spellings hold `\u`: mayNameBelow). A first-wins client would read the first, the
 * gateway (JSON.parse) the last.
 */
export function mayRepeatUpdate(text: string): boolean {
  return (
    text.includes('uri') ||
    text.includes('taskId') ||
    text.indexOf('"method"') !== text.lastIndexOf('"method"')
  );
}
