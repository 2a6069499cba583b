/**
 * A large held body (a rewritten list over TAIL_SLICE) written in slices, each once the client took
 * the one before ('drain'), then the response ended. Written at once, a body of tens of MB sat whole
 * in the socket's queue, where no 'drain' says whether the client takes any of it; this way a
 * client that takes nothing for `send_timeout` is cut as on a stream (send-watch.ts), and a slow
 * one that reads on is not.
 */
import type { ServerResponse } from 'node:http';
import type { SendWatch } from './send-watch.ts';

/** A held body larger than this is written in slices of this size as the client takes them. */
export const TAIL_SLICE = 64 * 1024;

export interface TailOwner {
  /** Bytes written toward the client (counted as they go: a cut body did not send them all). */
  sent(bytes: number): void;
  /** The response's send watch, made if needed (undefined without a send timeout). */
  sendWatch(): SendWatch | undefined;
  /** The pump is over (sent, cut, or its client gone): the held body's memory may be given back. */
  pumped(): void;
  /** The response was ended with the last slice: its unsent bytes are watched. */
  watchEnd(): void;
}

export class TailPump {
  private readonly res: ServerResponse;
  private readonly pieces: readonly Buffer[];
  private readonly owner: TailOwner;
  private index = 0;
  private offset = 0;
  private stopped = false;

  constructor(res: ServerResponse, pieces: readonly Buffer[], owner: TailOwner) {
    this.res = res;
    this.pieces = pieces;
    this.owner = owner;
  }

  /** Writes slices while the client's connection takes them; ends the response after the last. */
  pump(): void {
    const res = this.res;
    const pieces = this.pieces;
    // (The gateway may end the response meanwhile: a stream ended at its credential's expiry.)
    while (!this.stopped && !res.destroyed && !res.writableEnded) {
      // One writev for each slice, however many pieces (a remembered list's views) it spans: one
      // write call per piece costs more than the slicing saves.
      res.cork();
      let batch = 0;
      while (batch < TAIL_SLICE && this.index < pieces.length) {
        const piece = pieces[this.index] as Buffer;
        const start = this.offset;
        const end = Math.min(piece.length, start + TAIL_SLICE - batch);
        res.write(start === 0 && end === piece.length ? piece : piece.subarray(start, end));
        batch += end - start;
        if (end === piece.length) {
          this.index++;
          this.offset = 0;
        } else this.offset = end;
      }
      this.owner.sent(batch);
      if (this.index === pieces.length) {
        this.stop();
        // (end() uncorks: the last slice goes with it.)
        res.end();
        this.owner.watchEnd();
        return;
      }
      res.uncork();
      if (res.writableNeedDrain) {
        res.once('drain', () => {
          this.owner.sendWatch()?.clear();
          this.pump();
        });
        this.owner.sendWatch()?.paused();
        return;
      }
    }
    this.stop();
  }

  /** Stops writing (sent, cut, or the client gone); the owner is told once. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.owner.pumped();
  }
}
