/** The request id: the client's X-Request-Id when it is sane, otherwise a fresh UUID. */
import type { IncomingMessage } from 'node:http';
import { randomUUID } from 'node:crypto';

const SANE = /^[A-Za-z0-9._:-]{1,128}$/;

export function requestIdFor(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && SANE.test(given) ? given : randomUUID();
}
