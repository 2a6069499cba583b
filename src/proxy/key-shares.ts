/**
 * One key's share of the body budget. Request bodies are held from their first byte until their
 * response has finished (read-body.ts), and the budget (`limits.max_buffered_bytes`) is shared by
 * every key: without a share, one key's bodies held back a byte short of their end, or whole bodies
 * whose answers it keeps waiting, took all of it and every other key got 503. A key's bodies may
 * hold at most `share` bytes together (a quarter of the budget, at least one body of the largest
 * size); past it the key's next body is refused like one over the budget, and other keys keep the
 * rest. Counted per key id in this process; an id holding nothing has no entry.
 */
import type { Budget, BufferBudget } from './body-buffer.ts';

export class KeyShares {
  private readonly held = new Map<string, number>();
  readonly budget: BufferBudget;
  readonly share: number;

  constructor(budget: BufferBudget, share: number) {
    if (!Number.isSafeInteger(share) || share <= 0)
      throw new TypeError('KeyShares: share must be a positive integer');
    this.budget = budget;
    this.share = share;
  }

  /** The budget one key's request body reserves against (one small object per body). */
  for(id: string): Budget {
    return new KeyBudget(this, id);
  }

  /** Bytes `id`'s bodies hold now. */
  of(id: string): number {
    return this.held.get(id) ?? 0;
  }

  tryReserve(id: string, n: number): boolean {
    const held = this.held.get(id) ?? 0;
    if (held + n > this.share || !this.budget.tryReserve(n)) return false;
    this.held.set(id, held + n);
    return true;
  }

  release(id: string, n: number): void {
    this.budget.release(n);
    const left = (this.held.get(id) ?? n) - n;
    if (left > 0) this.held.set(id, left);
    else this.held.delete(id);
  }
}

class KeyBudget implements Budget {
  private readonly shares: KeyShares;
  private readonly id: string;

  constructor(shares: KeyShares, id: string) {
    this.shares = shares;
    this.id = id;
  }

  tryReserve(n: number): boolean {
    return this.shares.tryReserve(this.id, n);
  }

  release(n: number): void {
    this.shares.release(this.id, n);
  }
}
