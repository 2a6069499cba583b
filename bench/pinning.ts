/**
 * tools/list of 1,000 tools with and without tool-definition pinning: two gateways in the same run,
 * one with `pinning.lockfile` (every tool pinned and unchanged, the steady state), one without.
 * The target: filtering with pinning within 20% of filtering without it.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expectReply } from './client.ts';
import { LIST, compare, direct, keyEntry, pipelineConfig, via } from './measure.ts';
import type { Measured, Scenario, Target } from './measure.ts';
import { checkRow, latencyRow } from './report.ts';
import { countAllowed, halfAllowlist, makeTools } from './tools.ts';
import { lockfileOf, serializeLockfile } from '../src/pinning/lockfile.ts';

export const toolsListPinned: Scenario = {
  name: 'tools-list-pinned',
  title: 'tools/list with 1,000 tools, with and without tool-definition pinning',
  notes:
    'One connection. Two gateways, identical but for `pinning.lockfile` (all 1,000 tools pinned, unchanged). ' +
    '"half" is the key with five prefix patterns (500 tools kept); "allow *" a key allowed everything, whose ' +
    'list is not filtered without pinning and is judged entry by entry with it. The ratio is the time ' +
    'through the pinned gateway over the time through the unpinned one (origin time included).',
  async run(ctx) {
    const all = await ctx.key('bench-all');
    const half = await ctx.key('bench-half');
    const tools = makeTools(ctx.tools);
    const lockfile = join(ctx.dir, 'mcpgate.lock.json');
    writeFileSync(
      lockfile,
      serializeLockfile(lockfileOf({ tools: tools as unknown as Record<string, unknown>[], prompts: [] })),
    );
    const patterns = halfAllowlist(ctx.tools);
    const keys = [keyEntry(all, ['*']), keyEntry(half, patterns)];
    const plain = await ctx.gateway('tools-list-unpinned', pipelineConfig(ctx, keys, '/dev/null'));
    const pinned = await ctx.gateway('tools-list-pinned', {
      ...pipelineConfig(ctx, keys, '/dev/null'),
      pinning: { lockfile },
    });
    const d = await direct(ctx);
    const targets = [
      await via(plain, 'half', half),
      await via(pinned, 'half, pinned', half),
      await via(plain, 'allow *', all),
      await via(pinned, 'allow *, pinned', all),
    ];
    const expected = countAllowed(
      tools.map((t) => t.name),
      patterns,
    );
    for (const t of targets) {
      const want = t.label.startsWith('half') ? expected : ctx.tools;
      await expectReply(`tools/list via ${t.label}`, t.url, t.headers, LIST, (msg) => {
        const n = (msg.result as { tools?: unknown[] } | undefined)?.tools?.length;
        return n === want ? undefined : `${n} tools, expected ${want}`;
      });
    }
    const [dm, h, hp, a, ap] = (await compare(ctx, [d, ...targets] as Target[], LIST, 1)) as Measured[];
    const within = (base: Measured, got: Measured) => got.p50 / base.p50 <= 1.2;
    return [
      latencyRow('direct vs half, pinned, median', ['direct', dm!.p50], ['half, pinned', hp!.p50]),
      latencyRow('half key, median', ['unpinned', h!.p50], ['pinned', hp!.p50]),
      checkRow(
        'half key, pinned / unpinned',
        `${(hp!.p50 / h!.p50).toFixed(2)}×`,
        '≤ 1.20×',
        within(h!, hp!),
      ),
      latencyRow('allow * key, median', ['unpinned', a!.p50], ['pinned', ap!.p50]),
      checkRow(
        'allow * key, pinned / unpinned',
        `${(ap!.p50 / a!.p50).toFixed(2)}×`,
        '≤ 1.20×',
        within(a!, ap!),
      ),
    ];
  },
};
