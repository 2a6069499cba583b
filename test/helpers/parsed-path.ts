/**
 * The reference the byte paths of response matching are fuzzed against: the parsed path of
 * src/integrity/match.ts written out plainly (strict UTF-8 decode, JSON.parse, restoreIds, then the
 * plan's list filter). A body it cannot read or answer throws ERR_UPSTREAM_PROTOCOL, as match.ts does.
 */
import { GatewayError } from '../../src/jsonrpc/errors.ts';
import { restoreIds } from '../../src/integrity/restore.ts';
import type { ResponseIds } from '../../src/integrity/match.ts';
import { filterJsonResponseBody } from '../../src/policy/filter-list.ts';
import type { Grants } from '../../src/policy/grants.ts';

const strict = new TextDecoder('utf-8', { fatal: true });

export function parsedJsonPath(bytes: Buffer, ids: ResponseIds, grants: Grants): Buffer {
  let text: string;
  let value: unknown;
  try {
    text = strict.decode(bytes);
    value = JSON.parse(text);
  } catch (cause) {
    throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { cause });
  }
  const restored = restoreIds(text, value, ids);
  if (restored === undefined) throw new GatewayError('ERR_UPSTREAM_PROTOCOL', { message: 'unanswerable' });
  const out = Buffer.from(restored.text);
  return restored.plans === undefined ? out : filterJsonResponseBody(out, restored.plans, grants);
}
