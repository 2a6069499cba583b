import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, isLogLevel, LOG_LEVELS } from '../../../src/log/logger.ts';
import { formatPretty } from '../../../src/log/pretty.ts';

function capture() {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => lines.push(s) } };
}

describe('operational logger', () => {
  it('JSON lines with a level label and ISO time, no pid/hostname', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', destination });
    log.info({ listen: '127.0.0.1:8080' }, 'listening');
    log.debug('hidden');
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.equal(entry.level, 'info');
    assert.match(String(entry.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(entry.msg, 'listening');
    assert.equal('pid' in entry || 'hostname' in entry, false);
  });

  it('honours every --log-level, including silent', () => {
    for (const level of LOG_LEVELS) {
      const { lines, destination } = capture();
      const log = createLogger({ level, destination });
      log.trace('t');
      log.debug('d');
      log.info('i');
      log.warn('w');
      log.error('e');
      log.fatal('f');
      const expected = level === 'silent' ? 0 : 6 - LOG_LEVELS.indexOf(level);
      assert.equal(lines.length, expected, level);
    }
    assert.equal(isLogLevel('verbose'), false);
    assert.throws(() => createLogger({ level: 'verbose' as never }), TypeError);
  });

  it('redacts Authorization, Cookie and X-API-Key values that slip into a log call', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', destination });
    const headers = {
      authorization: 'Bearer SECRET-A',
      cookie: 'sid=SECRET-C',
      'x-api-key': 'SECRET-K',
      'proxy-authorization': 'Basic SECRET-P',
      host: 'kept.example',
    };
    log.info({ req: { headers } }, 'one');
    log.info({ headers }, 'two');
    log.info({ ...headers }, 'three');
    const text = lines.join('');
    for (const secret of ['SECRET-A', 'SECRET-C', 'SECRET-K', 'SECRET-P'])
      assert.ok(!text.includes(secret), secret);
    assert.equal((text.match(/kept\.example/g) ?? []).length, 3);
    // The caller's object is left intact.
    assert.equal(headers.authorization, 'Bearer SECRET-A');
  });

  it('pretty mode: one readable line, no JSON', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', pretty: true, color: false, destination });
    log.info({ version: '0.1.0', keys: 2, upstream: 'http://u:1' }, 'mcpgate listening');
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /^\d\d:\d\d:\d\d\.\d{3} INFO {2}mcpgate listening version=0\.1\.0 keys=2 upstream=http:\/\/u:1\n$/,
    );
  });

  it('pretty mode prints an error with its stack, indented', () => {
    const { lines, destination } = capture();
    const log = createLogger({ level: 'info', pretty: true, color: true, destination });
    log.error({ err: new TypeError('bad thing') }, 'upstream trouble');
    const out = lines[0]!;
    assert.match(out, /ERROR/);
    assert.match(out, /upstream trouble err="TypeError: bad thing"/);
    assert.match(out, /\n {4}at /);
  });

  it('pretty formatter escapes control characters (no terminal injection, no forged lines)', () => {
    const line = JSON.stringify({
      level: 'warn',
      time: '2026-01-01T00:00:00.000Z',
      msg: 'a\x1b[2Jb\nc',
      v: 'x\x9by',
    });
    const out = formatPretty(line, false);
    assert.equal(out.split('\n').length, 2);
    // eslint-disable-next-line no-control-regex
    assert.ok(!/[\x00-\x09\x0b-\x1f\x7f-\x9f]/.test(out), JSON.stringify(out));
    assert.equal(out, '00:00:00.000 WARN  a\\u001b[2Jb\\u000ac v="x\\u009by"\n');
  });
});
