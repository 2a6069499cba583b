import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { logPinReport, pinWarning } from '../../../src/pinning/report.ts';
import type { Logger } from '../../../src/log/types.ts';

describe('pin warnings', () => {
  it('names the tool and what changed, and what the gateway does about it', () => {
    const changed = pinWarning(
      {
        kind: 'tools',
        name: 'search',
        change: 'changed',
        fields: ['description', 'inputSchema'],
        sha256: 'ab',
      },
      'hide',
    );
    assert.equal(
      changed.message,
      'tool "search" changed since it was pinned (description, inputSchema): hidden from lists and refused until re-pinned',
    );
    assert.deepEqual(changed.fields, {
      tool: 'search',
      change: 'changed',
      fields: ['description', 'inputSchema'],
      sha256: 'ab',
    });
    assert.equal(
      pinWarning({ kind: 'prompts', name: 'greet', change: 'new', fields: [], sha256: 'cd' }, 'warn').message,
      'prompt "greet" is not in the lockfile: passed (pinning.on_change: warn)',
    );
  });

  it('logs at warn level, with a long upstream name cut', () => {
    const lines: [object | string, string | undefined][] = [];
    const log = { warn: (o: object | string, m?: string) => void lines.push([o, m]) } as unknown as Logger;
    logPinReport(
      log,
      { kind: 'tools', name: 'x'.repeat(1000), change: 'unreadable', fields: [], sha256: undefined },
      'hide',
    );
    assert.equal(lines.length, 1);
    assert.equal((lines[0]![0] as { tool: string }).tool.length, 257);
    assert.match(lines[0]![1]!, /cannot be read as a client would read it/);
  });
});
