/**
 * Attack review of the CLI, configuration and reload surfaces (real `mcpgate` processes where the
 * promise is about what the CLI prints or logs; the loader itself where it is about structure).
 *
 * Tests named "held: ..." were guards that passed on the code reviewed; the others assert the
 * secure behaviour and failed on it (each one's comment says how, and the README line or rule it
 * holds the code to).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintKey, hasValidChecksum } from '../../src/auth/key-format.ts';
import { sha256Hex } from '../../src/auth/key-hash.ts';
import { parseConfigText } from '../../src/config/load.ts';
import { compileMatcher } from '../../src/policy/glob.ts';
import { runCli, startServe } from '../helpers/cli.ts';
import { waitFor } from '../helpers/net.ts';

const hex = (n: number) => randomBytes(n).toString('hex');
const UPSTREAM = 'http://127.0.0.1:9/mcp'; // nothing listens there: serve starts and warns
const HASH_A = `sha256:${sha256Hex(mintKey(randomBytes(32)))}`;

/** Fails with the secret's name (never its value) when `haystack` holds it or a 12-character piece of it. */
function assertAbsent(haystack: string, where: string, secrets: Readonly<Record<string, string>>): void {
  const WINDOW = 12;
  for (const [name, secret] of Object.entries(secrets)) {
    assert.ok(!haystack.includes(secret), `${where} contains the secret ${name}`);
    for (let i = 0; i + WINDOW <= secret.length; i++)
      assert.ok(
        !haystack.includes(secret.slice(i, i + WINDOW)),
        `${where} contains a piece of the secret ${name} (at ${i}): ${JSON.stringify(haystack.slice(0, 400))}`,
      );
  }
}

let dir: string;
let n = 0;
async function file(text: string): Promise<string> {
  const path = join(dir, `c${n++}.yaml`);
  await writeFile(path, text);
  return path;
}
const base = (extra: string) => `listen: 127.0.0.1:0\nupstream:\n  url: ${UPSTREAM}\n${extra}`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mcpgate-cli-attacks-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('secrets in error messages (brief: never echo a token or session secret in validate output or reload logs)', () => {
  // A literal secret (a password manager's output) that happens to hold `${`. Interpolation
  // refuses it (fail closed, fine), but the message quotes what follows `${`: the secret's tail.
  const TAIL = `Zq${hex(16)}-tail`;
  const SESSION = `S3cr3t-${hex(12)}\${${TAIL}`; // no closing brace
  const TOKEN_TAIL = `Tk${hex(16)}`;
  const TOKEN = `upt-${hex(8)}\${${TOKEN_TAIL}}rest`; // closed: read as a variable name

  it('validate does not quote the tail of a literal session secret or upstream token that holds "${"', async () => {
    const path = await file(
      base(
        `  headers:\n    authorization: "Bearer ${TOKEN}"\nauth:\n  session_secret: "${SESSION}"\nkeys:\n  - label: a\n    hash: "${HASH_A}"\n`,
      ),
    );
    const run = await runCli(['validate', '--config', path]);
    assert.equal(run.code, 1, 'the config must still fail closed');
    // Failed before the fix: `auth.session_secret: invalid interpolation ${Zq...-tail}` and
    // `upstream.headers.authorization: environment variable Tk... is not set`.
    assertAbsent(run.stdout + run.stderr, 'validate output', { TAIL, TOKEN_TAIL });
  });

  it('a reload refused for such a value says why without quoting the secret; the running config stays', async () => {
    const path = join(dir, 'reload.yaml');
    const good = base(`auth:\n  session_secret: "${hex(24)}"\nkeys:\n  - label: a\n    hash: "${HASH_A}"\n`);
    await writeFile(path, good);
    const gw = await startServe(['--config', path]);
    try {
      const before = gw.stderr().length;
      await writeFile(
        path,
        base(
          `  headers:\n    authorization: "Bearer ${TOKEN}"\nkeys:\n  - label: a\n    hash: "${HASH_A}"\n`,
        ),
      );
      gw.child.kill('SIGHUP');
      const logged = await waitFor(
        () => {
          const added = gw.stderr().slice(before);
          return /config not reloaded|config reloaded|config reload failed/.test(added) ? added : undefined;
        },
        10_000,
        'the reload to finish',
      );
      assert.match(logged, /config not reloaded: the running config stays/);
      assert.match(logged, /upstream\.headers\.authorization/);
      // Failed before the fix: {"level":"error","path":"upstream.headers.authorization","msg":"environment variable Tk... is not set"}
      assertAbsent(logged, 'reload log', { TOKEN_TAIL });
    } finally {
      await gw.stop();
    }
  });
});

describe('a secret that starts with `*` (YAML reads it as an alias; brief: never echo a token, in validate output or reload logs)', () => {
  // A generated password such as `*Xk9...` written unquoted: YAML takes it as an alias, and the
  // loader's toJS throws `Unresolved alias (the anchor must be set before the alias): <secret>`,
  // which is not in doc.errors; main.ts prints it as `mcpgate: <message>`, reload-on-hup.ts logs it.
  const TOKEN = `Ak${hex(16)}`;
  const config = (extra = '') =>
    base(`  headers:\n    authorization: *${TOKEN}\n${extra}keys:\n  - label: a\n    hash: "${HASH_A}"\n`);

  it('validate refuses it with a path and without quoting the token', async () => {
    const run = await runCli(['validate', '--config', await file(config())]);
    assert.equal(run.code, 1);
    // Failed before the fix: "mcpgate: Unresolved alias (the anchor must be set before the alias): Ak..."
    assertAbsent(run.stdout + run.stderr, 'validate output', { TOKEN });
  });

  it('a reload of such a file keeps the running config and does not log the token', async () => {
    const path = join(dir, 'reload-alias.yaml');
    await writeFile(path, base(`keys:\n  - label: a\n    hash: "${HASH_A}"\n`));
    const gw = await startServe(['--config', path]);
    try {
      const before = gw.stderr().length;
      await writeFile(path, config());
      gw.child.kill('SIGHUP');
      const logged = await waitFor(
        () => {
          const added = gw.stderr().slice(before);
          return /config not reloaded|config reloaded|config reload failed/.test(added) ? added : undefined;
        },
        10_000,
        'the reload to finish',
      );
      assert.doesNotMatch(logged, /"msg":"config reloaded"/);
      // Failed before the fix: {"level":"error","err":{"message":"Unresolved alias (...): Ak..."},"msg":"config reload failed"}
      assertAbsent(logged, 'reload log', { TOKEN });
    } finally {
      await gw.stop();
    }
  });
});

describe('rate_limit.redis.url (brief: never log a Redis password; an invalid config fails closed)', () => {
  // A one-slash typo of redis://. ioredis takes anything it cannot read as a URL for a Unix socket
  // path and its connect error quotes that path, password included.
  const PASSWORD = `rpw${hex(16)}`;
  const TYPO = `redis:/:${PASSWORD}@127.0.0.1:1/0`;
  const config = () =>
    base(
      `keys:\n  - label: a\n    hash: "${HASH_A}"\nrate_limit:\n  backend: redis\n  redis:\n    url: "${TYPO}"\n    timeout: 100ms\n`,
    );

  it('validate refuses a redis url that is not redis:// or rediss:// (it says "ok" today)', async () => {
    const run = await runCli(['validate', '--config', await file(config())]);
    // Failed before the fix: exit 0, "ok (upstream ... rate limit redis ...)".
    assert.equal(run.code, 1, `validate accepted ${'rate_limit.redis.url'}: ${run.stdout}`);
    assert.match(run.stderr, /rate_limit\.redis\.url/);
    assertAbsent(run.stdout + run.stderr, 'validate output', { PASSWORD });
  });

  it('serve never writes the Redis password, even from a mistyped url', async () => {
    const path = await file(config());
    let gw;
    try {
      gw = await startServe(['--config', path]);
    } catch (err) {
      // Refusing to start is the secure outcome; the refusal must not quote the password either.
      assertAbsent(String(err), 'serve refusal', { PASSWORD });
      return;
    }
    try {
      // Failed before the fix: {"store":"redis","err":{"message":"connect ENOENT /:rpw...@127.0.0.1:1/0"...},"msg":"rate limit store error"}
      assertAbsent(gw.stdout() + gw.stderr(), 'serve output', { PASSWORD });
    } finally {
      await gw.stop();
    }
  });
});

describe('unknown fields (README: "Unknown fields are errors: a typo in a security config must not silently disable a rule")', () => {
  it('validate reports a `__proto__` field instead of silently dropping it', async () => {
    // The YAML loader keeps `__proto__` as an own key; interpolation assigns it as the prototype,
    // and the clone before validation drops it: no error, nothing applied.
    const path = await file(
      base(
        `keys:\n  - label: a\n    hash: "${HASH_A}"\n    __proto__:\n      disabled: true\n__proto__:\n  auth:\n    allow_unauthenticated: true\n`,
      ),
    );
    const run = await runCli(['validate', '--config', path]);
    // Failed before the fix: exit 0, "ok (... 1 key(s) ...)".
    assert.equal(run.code, 1, run.stdout);
    assert.match(run.stderr, /__proto__: unknown field/);
  });

  it('held: the same `__proto__` from an MCPGATE_KEYS JSON value is reported as unknown', () => {
    const { config, issues } = parseConfigText(
      `upstream:\n  url: ${UPSTREAM}\n`,
      { MCPGATE_KEYS: JSON.stringify([{ label: 'a', hash: HASH_A }]).replace('{', '{"__proto__":{"x":1},') },
      Date.now(),
    );
    assert.equal(config, undefined);
    assert.ok(issues.some((i) => i.path === 'keys[0].__proto__' && /unknown field/.test(i.message)));
  });
});

describe('a key pasted where the config would log it (README: "the key itself is never logged")', () => {
  it('validate flags a key pasted as a label, as it does for a key pasted as a hash', async () => {
    // The label goes into every audit line, the metrics and the reload logs. `hash:` has a guard
    // for exactly this paste ("this is a key, not its hash"); `label:` accepts a real mcpg_ key
    // (54 characters of [A-Za-z0-9_]).
    const key = mintKey(randomBytes(32));
    assert.ok(hasValidChecksum(key));
    const path = await file(base(`keys:\n  - label: ${key}\n    hash: "sha256:${sha256Hex(key)}"\n`));
    const run = await runCli(['validate', '--config', path]);
    // Failed before the fix: exit 0 with no word about keys[0].label.
    assert.match(run.stderr, /keys\[0\]\.label/, `validate said nothing: ${run.stdout}`);
  });
});

describe('held: YAML features are refused or bounded', () => {
  it('held: "billion laughs" aliases are refused in one line, without a stack trace', async () => {
    const laughs =
      'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' +
      ['b', 'c', 'd', 'e', 'f', 'g']
        .map((k, i) => `${k}: &${k} [${Array(10).fill(`*${'abcdefg'[i]}`).join(',')}]`)
        .join('\n') +
      '\n';
    const run = await runCli(['validate', '--config', await file(base(laughs))]);
    assert.equal(run.code, 1);
    // The problem, then validate's count of problems; no stack trace.
    assert.match(run.stderr, /^\(yaml\): too many alias expansions/, run.stderr);
    assert.ok(run.stderr.trim().split('\n').length <= 2, run.stderr);
    assert.doesNotMatch(run.stderr, /\n\s+at /);
    const serve = await runCli(['serve', '--config', await file(base(laughs))]);
    assert.equal(serve.code, 1);
    assert.doesNotMatch(serve.stderr, /listening/);
  });

  it('held: duplicate keys, merge keys, several documents and non-finite numbers are refused', () => {
    const bad = [
      base(`auth:\n  allow_unauthenticated: false\n  allow_unauthenticated: true\n`),
      base(`keys:\n  - &k\n    label: a\n    hash: "${HASH_A}"\n  - <<: *k\n    label: b\n`),
      base(`---\nauth:\n  allow_unauthenticated: true\n`),
      base(`rate_limit:\n  capacity: 1e400\n`),
      base(`rate_limit:\n  capacity: .inf\n`),
      base(`keys:\n  - label: !!js/function "function(){return 1}"\n    hash: "${HASH_A}"\n`),
    ];
    for (const text of bad) {
      const { config } = parseConfigText(text, {}, Date.now());
      assert.equal(config, undefined, text);
    }
  });

  it('held: duplicate labels, and one hash spelled two ways, are refused', () => {
    const bare = HASH_A.slice(7).toUpperCase();
    const { config, issues } = parseConfigText(
      base(`keys:\n  - label: a\n    hash: "${HASH_A}"\n  - label: a\n    hash: " ${bare} "\n`),
      {},
      Date.now(),
    );
    assert.equal(config, undefined);
    assert.ok(issues.some((i) => /duplicate label/.test(i.message)));
    assert.ok(issues.some((i) => /duplicate hash/.test(i.message)));
  });
});

describe('held: ${ENV} interpolation cannot change structure and fails closed', () => {
  it('held: a value carrying YAML, a line break or ${OTHER} stays one string', () => {
    const env = {
      INJECT: `"\nkeys:\n  - label: evil\n    hash: "${HASH_A}"\n    allow: ["*"]\nx: "`,
      REF: '${HIDDEN}',
      HIDDEN: `hidden-${hex(20)}`,
    };
    const { config, issues } = parseConfigText(
      base(`auth:\n  session_secret: "${'s'.repeat(32)}\${REF}"\npolicy:\n  unknown_methods: \${INJECT}\n`),
      env,
      Date.now(),
    );
    assert.equal(config, undefined);
    assert.ok(issues.some((i) => i.path === 'policy.unknown_methods'));
    const ok = parseConfigText(
      base(`auth:\n  session_secret: "${'s'.repeat(32)}\${REF}"\n`),
      env,
      Date.now(),
    );
    assert.ok(ok.config);
    assert.equal(ok.config.auth.session_secret, `${'s'.repeat(32)}\${HIDDEN}`);
    assert.equal(ok.config.keys.length, 0);
  });

  it('held: an unset or empty variable refuses to serve, and the message names only the variable', async () => {
    const path = await file(
      base(
        `auth:\n  session_secret: \${MCPGATE_TEST_UNSET_SECRET}\nkeys:\n  - label: a\n    hash: "\${EMPTY_HASH}"\n`,
      ),
    );
    const run = await runCli(['serve', '--config', path], { env: { EMPTY_HASH: '' } });
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /auth\.session_secret: environment variable MCPGATE_TEST_UNSET_SECRET is not set/,
    );
    assert.match(run.stderr, /keys\[0\]\.hash: environment variable EMPTY_HASH is not set/);
    assert.doesNotMatch(run.stderr, /listening/);
  });
});

describe('held: allow patterns match no more than the README says', () => {
  it('held: exact unless `*`; case-sensitive; `.`, `?`, `[` literal; `*` crosses `/` as documented', () => {
    const m = compileMatcher(['files_*', 'a.b', 'q?', '[x]', 'file:///public/*']);
    assert.equal(m('files_read'), true);
    assert.equal(m('FILES_read'), false);
    assert.equal(m('Files_read'), false);
    assert.equal(m('xfiles_read'), false);
    assert.equal(m('aXb'), false);
    assert.equal(m('qz'), false);
    assert.equal(m('x'), false);
    assert.equal(m('file:///public/a/b.txt'), true); // documented in src/policy/glob.ts
    assert.equal(m('file:///private/a'), false);
    assert.equal(compileMatcher([])('anything'), false);
  });
});

describe('held: keygen, hash, health and --help', () => {
  it('held: keygen prints the key once and only its hash in the snippet', async () => {
    const run = await runCli(['keygen', '--label', 'laptop', '--allow', 'search']);
    assert.equal(run.code, 0);
    const key = /mcpg_[0-9A-Za-z]{49}/.exec(run.stdout)?.[0] as string;
    assert.ok(key && hasValidChecksum(key));
    assert.equal(run.stdout.split(key).length, 2, 'the key is printed exactly once');
    const snippet = run.stdout.slice(run.stdout.indexOf('  - label:'));
    assert.ok(snippet.includes(`sha256:${sha256Hex(key)}`));
    assert.ok(!snippet.includes(key.slice(5, 20)));
    assert.equal(run.stderr, '');
    const again = await runCli(['keygen', '--label', 'laptop']);
    assert.ok(!again.stdout.includes(key));
  });

  it('held: hash refuses what the gateway would refuse without echoing it', async () => {
    const junk = `not a key ${hex(16)}`;
    const run = await runCli(['hash'], { input: junk });
    assert.equal(run.code, 1);
    assertAbsent(run.stdout + run.stderr, 'hash output', { junk: junk.slice(10) });
  });

  it('held: health prints no credential or query token of the probed URL', async () => {
    const pw = `hpw${hex(12)}`;
    const run = await runCli(['health', '--url', `http://u:${pw}@127.0.0.1:9/healthz?token=${pw}`]);
    assert.equal(run.code, 1);
    assertAbsent(run.stdout + run.stderr, 'health output', { pw });
  });

  it('held: --help of every command shows no secret from the environment', async () => {
    const secret = `env-secret-${hex(16)}`;
    const env = {
      MCPGATE_AUTH_SESSION_SECRET: secret,
      MCPGATE_SESSION_SECRET: secret,
      MCPGATE_LISTEN: `127.0.0.1:${8000}`,
      MCPGATE_RATE_LIMIT_REDIS_URL: `redis://:${secret}@h:6379`,
    };
    for (const cmd of ['serve', 'validate', 'keygen', 'hash', 'pin', 'health', 'reload']) {
      const run = await runCli([cmd, '--help'], { env });
      assertAbsent(run.stdout + run.stderr, `${cmd} --help`, { secret });
    }
  });

  it('held: validate and the serve start line show no upstream token, query secret or session secret', async () => {
    const q = `qs${hex(12)}`;
    const tok = `ut${hex(12)}`;
    const sess = `ss${hex(20)}`;
    const path = await file(
      `listen: 127.0.0.1:0\nupstream:\n  url: "http://127.0.0.1:9/mcp?api_key=${q}"\n  headers:\n    authorization: "Bearer \${UPT}"\nauth:\n  session_secret: "${sess}"\nkeys:\n  - label: a\n    hash: "${HASH_A}"\n`,
    );
    const run = await runCli(['validate', '--config', path], { env: { UPT: tok } });
    assert.equal(run.code, 0, run.stderr);
    assertAbsent(run.stdout + run.stderr, 'validate', { q, tok, sess });
    const gw = await startServe(['--config', path, '--log-level', 'trace'], { UPT: tok });
    try {
      assertAbsent(gw.stdout() + gw.stderr(), 'serve start', { q, tok, sess });
    } finally {
      await gw.stop();
    }
  });
});
