/**
 * ioredis subclasses String, which leaves `String.prototype` in V8's dictionary mode and every
 * string method call on the generic LoadIC path (src/ratelimit/ioredis.ts). Each case asks V8 itself
 * (`%HasFastProperties`, in a child started with --allow-natives-syntax) about a fresh process.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

const ROOT = new URL('../../../', import.meta.url).href;

/** Whether String.prototype is a fast-mode object after `body` ran in a fresh process. */
function stringPrototypeFastAfter(body: string): boolean {
  const script = `
    const fast = new Function('o', 'return %HasFastProperties(o)');
    if (!fast(String.prototype)) throw new Error('String.prototype is slow before anything loaded');
    ${body}
    process.stdout.write(String(fast(String.prototype)));
  `;
  const out = execFileSync(
    process.execPath,
    ['--allow-natives-syntax', '--input-type=module', '-e', script],
    {
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
  assert.match(out, /^(true|false)$/);
  return out === 'true';
}

describe('String.prototype stays fast', () => {
  it('importing ioredis as it is leaves it in dictionary mode (what the rest guards against)', (t) => {
    if (stringPrototypeFastAfter(`await import('ioredis');`))
      t.skip('this ioredis no longer slows String.prototype: ratelimit/ioredis.ts may load it plainly');
  });

  it('loading the gateway with the memory store does not load ioredis', () => {
    assert.equal(
      stringPrototypeFastAfter(`
        await import('${ROOT}src/cli/program.ts');
        await import('${ROOT}src/server/gateway.ts');
        await import('${ROOT}src/ratelimit/create.ts').then((m) =>
          m.createRateLimitStore({ backend: 'memory', on_store_error: 'deny' }, { now: () => 0 }));
      `),
      true,
    );
  });

  it('loadIoredis puts it back in fast mode after ioredis loads', () => {
    assert.equal(
      stringPrototypeFastAfter(`
        const { loadIoredis } = await import('${ROOT}src/ratelimit/ioredis.ts');
        const Redis = await loadIoredis();
        if (typeof Redis !== 'function') throw new Error('no Redis class');
      `),
      true,
    );
  });
});
