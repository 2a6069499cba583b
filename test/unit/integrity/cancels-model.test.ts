/**
 * PendingTags (src/integrity/cancels.ts), which keeps emptied maps and sweeps them every
 * SWEEP_AFTER: a randomized model check against a plain reference (one Map keyed by
 * JSON.stringify([binding, session, typeof id, id]), insertion-ordered, with the same bounds), with
 * the real SWEEP_AFTER and with copies of the module whose SWEEP_AFTER is 1, 2, 3 or 7, so that
 * sweeps run at every point they can: inside remember() (unlinking a replaced entry, or the bound's
 * eviction at its end) and inside forget(). And what the emptied maps keep alive when session ids
 * are long.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as real from '../../../src/integrity/cancels.ts';

type Id = string | number;
type Module = { PendingTags: typeof real.PendingTags; SWEEP_AFTER: number };

/** The same module with another SWEEP_AFTER (a copy in a temporary directory). */
async function withSweepAfter(n: number): Promise<Module> {
  const source = readFileSync(new URL('../../../src/integrity/cancels.ts', import.meta.url), 'utf8');
  const patched = source.replace(/export const SWEEP_AFTER = [\d_]+;/, `export const SWEEP_AFTER = ${n};`);
  assert.notEqual(patched, source);
  const dir = mkdtempSync(join(tmpdir(), 'cancels-model-'));
  const file = join(dir, `cancels-${n}.ts`);
  writeFileSync(file, patched);
  try {
    return (await import(pathToFileURL(file).href)) as Module;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** mulberry32: a seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type RefEntry = { tag: string; seq: number; binding: string; scope: string };

/** The reference: one flat map, oldest first, the same two bounds. */
class Reference {
  readonly entries = new Map<string, RefEntry>();
  readonly counts = new Map<string, number>();
  #seq = 0;
  readonly max: number;
  readonly perPrincipal: number;
  constructor(max: number, perPrincipal: number) {
    this.max = max;
    this.perPrincipal = perPrincipal;
  }
  static key(binding: string, session: string | undefined, id: Id): string {
    return JSON.stringify([binding, session ?? '', typeof id, id]);
  }
  remember(binding: string, session: string | undefined, id: Id, tag: string): { key: string; seq: number } {
    const key = Reference.key(binding, session, id);
    if (this.entries.has(key)) this.#delete(key);
    const seq = ++this.#seq;
    this.entries.set(key, { tag, seq, binding, scope: JSON.stringify([binding, session ?? '']) });
    this.counts.set(binding, (this.counts.get(binding) ?? 0) + 1);
    if ((this.counts.get(binding) as number) > this.perPrincipal) {
      for (const [k, e] of this.entries)
        if (e.binding === binding) {
          this.#delete(k);
          break;
        }
    } else if (this.entries.size > this.max) this.#delete(this.entries.keys().next().value as string);
    return { key, seq };
  }
  forget(handle: { key: string; seq: number }, tag: string): void {
    const e = this.entries.get(handle.key);
    if (e !== undefined && e.seq === handle.seq && e.tag === tag) this.#delete(handle.key);
  }
  tagFor(binding: string, session: string | undefined, id: Id): string | undefined {
    return this.entries.get(Reference.key(binding, session, id))?.tag;
  }
  #delete(key: string): void {
    const e = this.entries.get(key) as RefEntry;
    this.entries.delete(key);
    this.counts.set(e.binding, (this.counts.get(e.binding) as number) - 1);
  }
  /** Distinct non-empty (principal, session) scopes, and principals. */
  live(): { scopes: number; principals: number } {
    const scopes = new Set<string>();
    const principals = new Set<string>();
    for (const e of this.entries.values()) {
      scopes.add(e.scope);
      principals.add(e.binding);
    }
    return { scopes: scopes.size, principals: principals.size };
  }
}

// Binding ids and sessions that would collide if spelled into one key, '' and undefined (the same
// session, as in cancels.ts), and ids that differ only by type.
const BINDINGS = ['k:a', 'k:b', 'o:x', 'o:x\n', 'k:c', 'k:"d'];
const SESSIONS = [undefined, '', 's1', 's2', '\nn5', 's"3'];
const IDS: Id[] = [0, 1, 2, 3, '0', '1', '2', '\nn5', 'x'];

function modelCheck(mod: Module, seed: number, iterations: number): { sweepsSeen: number } {
  const rand = random(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  let sweepsSeen = 0;
  let ops = 0;
  while (ops < iterations) {
    // A fresh instance now and then, with bounds small enough to evict often (or the defaults).
    const max = pick([1, 2, 3, 5, 8, 40, real.MAX_PENDING]);
    const perPrincipal = pick([1, 2, 3, max, Math.min(max, real.MAX_PENDING_PER_PRINCIPAL)]);
    const bounded = Math.min(perPrincipal, max);
    const tags = new mod.PendingTags(max, bounded);
    const ref = new Reference(max, bounded);
    // Many sessions in some runs (each left empty once), few in others (reused).
    const manySessions = rand() < 0.5;
    const handles: { entry: real.Pending; ref: { key: string; seq: number }; tag: string }[] = [];
    let lastHeld = tags.held();
    const runLength = 200 + Math.floor(rand() * 3000);
    for (let step = 0; step < runLength; step++, ops++) {
      const r = rand();
      const binding = pick(BINDINGS);
      const session = manySessions && rand() < 0.5 ? `m${Math.floor(rand() * 500)}` : pick(SESSIONS);
      const id = pick(IDS);
      if (r < 0.55 || handles.length === 0) {
        const tag = `T${ops}:${rand() < 0.05 ? 'same' : Math.floor(rand() * 1e9)}`;
        const entry = tags.remember(binding, session, id, tag);
        const h = ref.remember(binding, session, id, tag);
        handles.push({ entry, ref: h, tag });
        if (handles.length > 200) handles.splice(Math.floor(rand() * handles.length), 1);
      } else {
        // Forget a remembered entry (answered), often a stale one, now and then under a wrong tag.
        const i = Math.floor(rand() * handles.length);
        const h = handles[i] as (typeof handles)[number];
        const tag = rand() < 0.1 ? `${h.tag}x` : h.tag;
        tags.forget(h.entry, tag);
        ref.forget(h.ref, tag);
        if (rand() < 0.7) handles.splice(i, 1);
      }
      assert.equal(tags.size, ref.entries.size, `size (seed ${seed}, op ${ops})`);
      // Cancellations: the same tag (or none) for random keys and for every live one.
      for (let k = 0; k < 4; k++) {
        const b = pick(BINDINGS);
        const s = pick(SESSIONS);
        const i = pick(IDS);
        assert.equal(tags.tagFor(b, s, i), ref.tagFor(b, s, i), `tagFor (seed ${seed}, op ${ops})`);
      }
      if (step % 16 === 0) {
        for (const [key, e] of ref.entries) {
          const [b, s, , i] = JSON.parse(key) as [string, string, string, Id];
          assert.equal(tags.tagFor(b, s, i), e.tag, `live entry (seed ${seed}, op ${ops})`);
        }
        // Held beyond the live ones: emptied maps and lists, never SWEEP_AFTER of them.
        const held = tags.held();
        const live = ref.live();
        assert.ok(held.scopes >= live.scopes && held.principals >= live.principals);
        const empty = held.scopes - live.scopes + (held.principals - live.principals);
        assert.ok(empty < mod.SWEEP_AFTER || mod.SWEEP_AFTER === 1, `empty held ${empty} (seed ${seed})`);
        if (mod.SWEEP_AFTER === 1) assert.equal(empty, 0);
        if (held.scopes < lastHeld.scopes || held.principals < lastHeld.principals) sweepsSeen++;
        lastHeld = held;
      }
    }
  }
  return { sweepsSeen };
}

describe('pending cancellations: model check against a flat reference map', () => {
  const SEED = 0x5eed22;
  const ITERATIONS = 200_000;

  it(`agrees with the reference at SWEEP_AFTER = ${real.SWEEP_AFTER} (seed ${SEED}, ${ITERATIONS} ops)`, () => {
    const { sweepsSeen } = modelCheck(real, SEED, ITERATIONS);
    assert.ok(sweepsSeen > 0, 'no sweep was exercised');
  });

  for (const n of [1, 2, 3, 7]) {
    it(`agrees with the reference when a sweep runs every ${n} emptied (seed ${SEED + n}, ${ITERATIONS} ops)`, async () => {
      const mod = await withSweepAfter(n);
      const { sweepsSeen } = modelCheck(mod, SEED + n, ITERATIONS);
      assert.ok(sweepsSeen > 0, 'no sweep was exercised');
    });
  }

  it("a sweep inside remember(), when the replaced entry was its principal's last, keeps the new entry findable", async () => {
    // SWEEP_AFTER = 1: unlinking the replaced entry empties its principal's list and sweeps at once.
    const { PendingTags } = await withSweepAfter(1);
    const tags = new PendingTags(10, 10);
    const first = tags.remember('k:a', 's', 1, 'T1');
    const second = tags.remember('k:a', 's', 1, 'T2');
    assert.equal(tags.tagFor('k:a', 's', 1), 'T2');
    tags.forget(first, 'T1');
    assert.equal(tags.tagFor('k:a', 's', 1), 'T2');
    assert.deepEqual(tags.held(), { scopes: 1, principals: 1 });
    // The bound's eviction at the end of remember() sweeps too: the evicted one's maps go, not ours.
    const bounded = new PendingTags(1, 1);
    bounded.remember('k:a', 's', 1, 'A');
    bounded.remember('k:b', 't', 1, 'B');
    assert.equal(bounded.tagFor('k:b', 't', 1), 'B');
    assert.equal(bounded.tagFor('k:a', 's', 1), undefined);
    assert.deepEqual(bounded.held(), { scopes: 1, principals: 1 });
    tags.forget(second, 'T2');
    assert.equal(tags.size, 0);
    assert.deepEqual(tags.held(), { scopes: 0, principals: 0 });
  });
});

describe('pending cancellations: what emptied maps keep alive', () => {
  it('keeps no more than a few hundred KB for emptied maps, however long the session ids (1 MB allowed)', async () => {
    // With auth.allow_unauthenticated the client's Mcp-Session-Id is the session as sent (handler.ts),
    // up to the 16 KB header limit (listen.ts). One request kept waiting holds the principal's list;
    // each answered request in a fresh session then leaves one map, keyed by its id, empty.
    const { setFlagsFromString } = await import('node:v8');
    const { runInNewContext } = await import('node:vm');
    const { randomBytes } = await import('node:crypto');
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const tags = new real.PendingTags();
    tags.remember('anonymous', 'kept', 0, 'K');
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 1; i < real.SWEEP_AFTER; i++) {
      const session = randomBytes(8_000).toString('hex');
      tags.forget(tags.remember('anonymous', session, 1, `T${i}`), `T${i}`);
    }
    gc();
    const retained = process.memoryUsage().heapUsed - before;
    assert.equal(tags.size, 1);
    assert.ok(retained < 1_000_000, `emptied maps keep ${(retained / 1e6).toFixed(1)} MB alive`);
  });
});
