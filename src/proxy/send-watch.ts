/**
 * `limits.send_timeout` for one response: it is cut when its client takes none of its bytes for
 * that long. One timer, armed two ways:
 * - `paused`: the relay paused the upstream on a full socket; the next 'drain' clears it (`clear`).
 *   Whether it is still worth cutting when the period passes is the relay's call (`stalled`).
 * - `ended`: the response was ended with bytes the client has not taken (a small held body written
 *   with its end, the last slice of a large one, an SSE stream's last bytes). No 'drain' comes
 *   after an end, so a client that read nothing would keep the bytes, its key's in-flight slot and
 *   its audit line for as long as it kept the connection. Each period, Node's count of unsent bytes
 *   (which drops only as its writes complete) is looked at again: a period with none of them taken
 *   cuts the response (`cut`).
 * Made only when the relay needs one (most responses are taken at once), and only with a timeout.
 */
import type { ServerResponse } from 'node:http';

export interface StallOwner {
  /** A paused response's period passed with nothing taken. */
  stalled(): void;
  /** An ended response's period passed with none of its bytes taken: it is cut. */
  cut(): void;
}

/** The watch of an ended response's unsent bytes (so one shared 'finish' listener serves all). */
const END_WATCH = Symbol('mcpgate.endWatch');

function onPausedStall(watch: SendWatch): void {
  watch.pausedStall();
}

function onEndStall(watch: SendWatch): void {
  watch.endStall();
}

function onEndTaken(this: ServerResponse): void {
  (this as ServerResponse & { [END_WATCH]?: SendWatch })[END_WATCH]?.clear();
}

export class SendWatch {
  private timer: NodeJS.Timeout | undefined = undefined;
  /** Bytes of the ended response not yet taken by the client when the end watch last looked. */
  private unsent = 0;
  private readonly res: ServerResponse;
  private readonly ms: number;
  private readonly owner: StallOwner;

  constructor(res: ServerResponse, ms: number, owner: StallOwner) {
    this.res = res;
    this.ms = ms;
    this.owner = owner;
  }

  /** The relay paused on a full socket: arms the timer, unless it is armed already. */
  paused(): void {
    if (this.timer !== undefined) return;
    this.timer = setTimeout(onPausedStall, this.ms, this);
    this.timer.unref();
  }

  /** The response was ended: watches its unsent bytes, if any (see the header). */
  ended(): void {
    const res = this.res;
    if (res.destroyed || res.writableLength === 0) return;
    this.unsent = res.writableLength;
    (res as ServerResponse & { [END_WATCH]?: SendWatch })[END_WATCH] = this;
    res.once('finish', onEndTaken);
    this.timer = setTimeout(onEndStall, this.ms, this);
    this.timer.unref();
  }

  /** The client took bytes ('drain'), took them all ('finish'), or the response is over. */
  clear(): void {
    if (this.timer === undefined) return;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  pausedStall(): void {
    this.timer = undefined;
    this.owner.stalled();
  }

  /** The end watch's period passed: cut the response unless the client took some of its bytes. */
  endStall(): void {
    this.timer = undefined;
    const res = this.res;
    if (res.destroyed || res.writableFinished) return;
    const unsent = res.writableLength;
    if (unsent < this.unsent) {
      this.unsent = unsent;
      this.timer = setTimeout(onEndStall, this.ms, this);
      this.timer.unref();
      return;
    }
    this.owner.cut();
  }
}
