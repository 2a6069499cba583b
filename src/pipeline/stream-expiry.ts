/**
 * An open stream (a GET stream, a 2026-07-28 `subscriptions/listen` answer) lives as long as its
 * client keeps it, and carries the upstream's messages all that time. Its credential was checked
 * when it opened: a key's `expires` or a token's `exp` passing later must end it too, as a request
 * made then would be refused (401). One timer per stream whose principal expires at all (keys
 * without `expires` need none); unref'd, cancelled when the stream closes.
 */
import type { RequestContext } from './context.ts';

/** setTimeout's longest delay (about 24.8 days); a later expiry waits again from there. */
const MAX_DELAY_MS = 2 ** 31 - 1;

function onTimer(watch: ExpiryWatch): void {
  watch.check();
}

/** Ends one stream (`end(ctx)`, the audit reason set) once its principal's credential has expired. */
export class ExpiryWatch {
  private timer: NodeJS.Timeout | undefined = undefined;
  private readonly ctx: RequestContext;
  private readonly at: number;
  private readonly now: () => number;
  private readonly end: (ctx: RequestContext) => void;

  private constructor(
    ctx: RequestContext,
    at: number,
    now: () => number,
    end: (ctx: RequestContext) => void,
  ) {
    this.ctx = ctx;
    this.at = at;
    this.now = now;
    this.end = end;
  }

  /**
   * A watch for `ctx`'s stream, or undefined when its credential never expires. `at`: when it
   * expires (its principal's, or the key's new expiry when a reload kept the stream), always given:
   * undefined is no expiry, never a fallback to the principal's.
   */
  static start(
    ctx: RequestContext,
    at: number | undefined,
    now: () => number,
    end: (ctx: RequestContext) => void,
  ): ExpiryWatch | undefined {
    if (at === undefined) return undefined;
    const watch = new ExpiryWatch(ctx, at, now, end);
    watch.check();
    return watch;
  }

  /** Ends the stream if the credential has expired, else waits (again) until it will have. */
  check(): void {
    this.timer = undefined;
    const left = this.at - this.now();
    if (left > 0) {
      this.timer = setTimeout(onTimer, Math.min(left, MAX_DELAY_MS), this);
      this.timer.unref();
      return;
    }
    // Its own reason: the credential was not refused (metrics count token refusals by reason).
    this.ctx.reason ??= 'ERR_STREAM_EXPIRED';
    this.end(this.ctx);
  }

  /** The stream closed first. */
  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
