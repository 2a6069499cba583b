import { describe, it } from 'node:test';
import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage } from 'node:http';
import assert from 'node:assert/strict';
import type { JsonRpcMessage } from '../../../src/jsonrpc/message.ts';
import { RPC } from '../../../src/jsonrpc/errors.ts';
import { checkMcpHeaders, decodeValue, mcpHeaders } from '../../../src/policy/headers.ts';

const V = '2026-07-28';
const meta = { 'io.modelcontextprotocol/protocolVersion': V };
const toolCall: JsonRpcMessage = {
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'get_weather', arguments: {}, _meta: meta },
};
const b64 = (s: string) => `=?base64?${Buffer.from(s).toString('base64')}?=`;

function assertMismatch(result: ReturnType<typeof checkMcpHeaders>, id: string | number | null = 1): void {
  assert.ok(result, 'expected a mismatch');
  assert.equal(result.code, 'ERR_HEADER_MISMATCH');
  assert.equal(result.status, 400);
  assert.equal(result.rpcCode, RPC.HEADER_MISMATCH);
  assert.equal(result.rpcCode, -32020);
  assert.equal(result.rpcId, id);
}

describe('checkMcpHeaders', () => {
  it('passes matching headers', () => {
    const h = { 'mcp-method': 'tools/call', 'mcp-name': 'get_weather', 'mcp-protocol-version': V };
    assert.equal(checkMcpHeaders(h, toolCall), undefined);
  });

  it('passes when the headers are absent (the upstream requires them on modern requests)', () => {
    assert.equal(checkMcpHeaders({}, toolCall), undefined);
    assert.equal(checkMcpHeaders({ 'mcp-method': 'tools/call' }, toolCall), undefined);
  });

  it('Mcp-Method must equal the body method, case-sensitively', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-method': 'tools/list' }, toolCall));
    assertMismatch(checkMcpHeaders({ 'mcp-method': 'Tools/Call' }, toolCall));
    assert.equal(
      checkMcpHeaders({ 'mcp-method': ' tools/call\t' }, toolCall),
      undefined,
      'OWS is not part of the value',
    );
  });

  it('Mcp-Name must equal params.name / params.uri / params.taskId', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'echo' }, toolCall));
    const read: JsonRpcMessage = {
      jsonrpc: '2.0',
      id: 'r',
      method: 'resources/read',
      params: { uri: 'file:///a b' },
    };
    assert.equal(checkMcpHeaders({ 'mcp-name': 'file:///a b' }, read), undefined);
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'file:///a' }, read), 'r');
    const prompt: JsonRpcMessage = {
      jsonrpc: '2.0',
      id: 2,
      method: 'prompts/get',
      params: { name: 'greeting' },
    };
    assert.equal(checkMcpHeaders({ 'mcp-name': 'greeting' }, prompt), undefined);
    for (const method of ['tasks/get', 'tasks/update', 'tasks/cancel']) {
      const task: JsonRpcMessage = { jsonrpc: '2.0', id: 3, method, params: { taskId: 't-1' } };
      assert.equal(checkMcpHeaders({ 'mcp-name': 't-1' }, task), undefined);
      assertMismatch(checkMcpHeaders({ 'mcp-name': 't-2' }, task), 3);
    }
  });

  it('decodes a Base64 sentinel before comparing', () => {
    const m: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'météo' } };
    assert.equal(checkMcpHeaders({ 'mcp-name': b64('météo') }, m), undefined);
    assertMismatch(checkMcpHeaders({ 'mcp-name': b64('meteo') }, m));
    const literal: JsonRpcMessage = {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: '=?base64?x?=' },
    };
    assert.equal(checkMcpHeaders({ 'mcp-name': b64('=?base64?x?=') }, literal), undefined);
  });

  it('refuses malformed values: bad Base64, invalid UTF-8, raw non-ASCII', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-name': '=?base64?Z2V0X3dlYXRoZXI?=' }, toolCall)); // missing padding
    assertMismatch(checkMcpHeaders({ 'mcp-name': '=?base64?!!!!?=' }, toolCall));
    assertMismatch(
      checkMcpHeaders({ 'mcp-name': `=?base64?${Buffer.from([0xff, 0xfe]).toString('base64')}?=` }, toolCall),
    );
    const m: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'café' } };
    // Node decodes header bytes as latin1: "café" would compare equal, but the spec requires Base64.
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'café' }, m));
    assert.equal(decodeValue(b64('get_weather')), 'get_weather');
    assert.equal(decodeValue('=?base64?Z2V0X3dlYXRoZXI=?='), 'get_weather');
    // Prefix and suffix overlap: the SDKs read "", a stricter reader the plain text.
    assert.equal(decodeValue('=?base64?='), undefined);
    assert.equal(decodeValue('=?base64??='), '');
  });

  it('refuses Mcp-Name on a method without a name, and when the body has no name', () => {
    const list: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/list' };
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'echo' }, list));
    const noName: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: {} };
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'echo' }, noName));
    const numeric: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 42 } };
    assertMismatch(checkMcpHeaders({ 'mcp-name': '42' }, numeric));
  });

  it('refuses duplicated headers (as headersDistinct shows them)', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-name': ['get_weather', 'rm_rf'] }, toolCall), null);
    assertMismatch(checkMcpHeaders({ 'mcp-method': ['tools/call', 'tools/call'] }, toolCall), null);
    assert.equal(checkMcpHeaders({ 'mcp-name': ['get_weather'] }, toolCall), undefined);
    // req.headers joins duplicates with ", ": that never equals the body either.
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'get_weather, rm_rf' }, toolCall));
  });

  it('refuses Mcp-Method or Mcp-Name on a batch', () => {
    const batch = [toolCall, { ...toolCall, id: 2 }];
    assertMismatch(checkMcpHeaders({ 'mcp-method': 'tools/call' }, batch), null);
    assertMismatch(checkMcpHeaders({ 'mcp-name': 'get_weather' }, batch), null);
    assertMismatch(checkMcpHeaders({ 'mcp-method': 'tools/call' }, [toolCall]), null);
    const legacy = [{ jsonrpc: '2.0', id: 1, method: 'tools/list' }] as JsonRpcMessage[];
    assert.equal(checkMcpHeaders({ 'mcp-protocol-version': '2025-03-26' }, legacy), undefined);
  });

  it('refuses Mcp-Method on a response, with id null (its id is the upstream request\u2019s)', () => {
    const answer: JsonRpcMessage = { jsonrpc: '2.0', id: 5, result: {} };
    assertMismatch(checkMcpHeaders({ 'mcp-method': 'tools/call' }, answer), null);
    assertMismatch(checkMcpHeaders({ 'mcp-param-a': 'b' }, answer), null);
  });

  it('MCP-Protocol-Version must equal the body\u2019s version claim when there is one', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-protocol-version': '2025-11-25' }, toolCall));
    const legacy: JsonRpcMessage = { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'x' } };
    assert.equal(checkMcpHeaders({ 'mcp-protocol-version': '2025-06-18' }, legacy), undefined);
    const batch = [legacy, { ...toolCall, id: 9 }];
    assertMismatch(checkMcpHeaders({ 'mcp-protocol-version': '2025-06-18' }, batch), 9);
  });

  it('checks notifications as well', () => {
    const n: JsonRpcMessage = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } };
    assert.equal(checkMcpHeaders({ 'mcp-method': 'notifications/cancelled' }, n), undefined);
    assertMismatch(checkMcpHeaders({ 'mcp-method': 'notifications/progress' }, n), null);
  });
});

describe('checkMcpHeaders: Mcp-Param-*', () => {
  const call = (args: Record<string, unknown>): JsonRpcMessage => ({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name: 'get_weather', arguments: args, _meta: meta },
  });

  it('passes a value some argument has (nested members, numbers, booleans, base64)', () => {
    const args = { region: 'eu', opts: { units: 'C', days: 3, live: true }, city: 'Zürich' };
    assert.equal(checkMcpHeaders({ 'mcp-param-region': 'eu' }, call(args)), undefined);
    assert.equal(checkMcpHeaders({ 'mcp-param-units': ' C ' }, call(args)), undefined);
    assert.equal(checkMcpHeaders({ 'mcp-param-days': '3', 'mcp-param-live': 'true' }, call(args)), undefined);
    assert.equal(checkMcpHeaders({ 'mcp-param-city': b64('Zürich') }, call(args)), undefined);
  });

  it('refuses a value no argument has: a component routing on the header would read another one', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': 'us' }, call({ region: 'eu' })));
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': 'eu' }, call({})));
    // Array items cannot be annotated: a value only inside an array does not count.
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': 'us' }, call({ regions: ['us'] })));
  });

  it('hole: a number with a leading zero mirrored 10 (an octal reader reads 010 as 8); failed before: passed', () => {
    for (const value of ['010', '-010', '00', '01.5', '0010'])
      assertMismatch(checkMcpHeaders({ 'mcp-param-days': value }, call({ days: Number(value) })));
    for (const value of ['0', '-0', '0.5', '10', '-10.25'])
      assert.equal(checkMcpHeaders({ 'mcp-param-days': value }, call({ days: Number(value) })), undefined);
  });

  it('refuses a repeated or malformed one, and one on a batch or on another method', () => {
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': ['eu', 'us'] }, call({ region: 'eu' })));
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': '=?base64?***?=' }, call({ region: 'eu' })));
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': 'e\u00fc' }, call({ region: 'e\u00fc' })));
    assertMismatch(checkMcpHeaders({ 'mcp-param-region': 'eu' }, [call({ region: 'eu' })]), null);
    assertMismatch(
      checkMcpHeaders({ 'mcp-param-region': 'eu' }, { jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    );
  });
});

describe('mcpHeaders', () => {
  it('gives every Mcp-* header but Mcp-Session-Id exactly as req.headersDistinct does, and no other header', async () => {
    const seen: { distinct: Record<string, string[]>; mine: Record<string, string[]> }[] = [];
    const server = createServer((req, res) => {
      seen.push({
        distinct: req.headersDistinct as Record<string, string[]>,
        mine: mcpHeaders(req.rawHeaders),
      });
      res.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    // An array of headers is sent as given (repeated, any case); Node adds no Host to it.
    const raw = [
      'Host',
      '127.0.0.1',
      'MCP-Protocol-Version',
      V,
      'Mcp-Name',
      'a',
      'mcp-name',
      'b',
      'Mcp-Param-Region',
      'eu',
      'mcP-METHOD',
      'tools/call',
      'Accept',
      'application/json',
      'MCP-Session-ID',
      'the-session',
      'X-Mcp-Name',
      'not mine',
      'mcp',
      'too short',
      // One character away from a name compared in place (first and last character after `mcp-`).
      'Mcp-Xame',
      'near 1',
      'Mcp-Metho_',
      'near 2',
      'MCP-Protocol-Versio-',
      'near 3',
      'Mcp-Session-Ix',
      'near 4',
    ];
    const req = request({ port, method: 'POST', headers: raw });
    req.end('{}');
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    res.resume();
    await once(res, 'end');
    server.close();
    const { distinct, mine } = seen[0]!;
    const expected = Object.fromEntries(
      Object.entries(distinct).filter(([n]) => n.startsWith('mcp-') && n !== 'mcp-session-id'),
    );
    assert.deepEqual(mine, expected);
    assert.deepEqual(distinct['mcp-session-id'], ['the-session'], 'sent, and left out of the copy');
    assert.deepEqual(mine['mcp-name'], ['a', 'b'], 'a repeated header keeps each value');
    assert.deepEqual(Object.keys(mine).sort(), [
      'mcp-metho_',
      'mcp-method',
      'mcp-name',
      'mcp-param-region',
      'mcp-protocol-versio-',
      'mcp-protocol-version',
      'mcp-session-ix',
      'mcp-xame',
    ]);
  });
});
