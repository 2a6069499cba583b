/**
 * MCP-Protocol-Version (pipeline/protocol-version.ts): only one protocol revision passes, with the
 * white space a header value may carry; anything else is refused before the upstream and never
 * recorded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkProtocolVersion, headerRevision, isRevision } from '../../../src/pipeline/protocol-version.ts';
import { isGatewayError } from '../../../src/jsonrpc/errors.ts';

function verdict(value: string | undefined): string | undefined {
  const headers = value === undefined ? {} : { 'mcp-protocol-version': value };
  const revision = headerRevision(headers);
  try {
    checkProtocolVersion(headers, revision);
    return revision ?? 'absent';
  } catch (err) {
    assert.ok(isGatewayError(err));
    assert.equal(err.code, 'ERR_INVALID_REQUEST');
    assert.equal(err.status, 400);
    return undefined;
  }
}

describe('the MCP-Protocol-Version header', () => {
  it('passes one revision, trimmed, and no header at all', () => {
    assert.equal(verdict('2025-11-25'), '2025-11-25');
    assert.equal(verdict(' \t2026-07-28 '), '2026-07-28');
    assert.equal(verdict(undefined), 'absent');
  });

  it('refuses anything else: a repeated header as Node joins it, a list, a key, a date with more', () => {
    for (const value of [
      '2025-11-25, 2025-06-18',
      '2025-11-25,2025-06-18',
      '',
      'latest',
      '2025-11-25x',
      '2025-1-25',
      'mcpg_0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOP',
      '2025-11-25\n',
    ]) {
      assert.equal(verdict(value), undefined, JSON.stringify(value));
    }
  });

  it('an initialize offers a revision only when it is spelled as one', () => {
    assert.ok(isRevision('2025-03-26'));
    for (const value of [' 2025-03-26', 'mcpg_x', 20250326, undefined]) assert.ok(!isRevision(value));
  });
});
