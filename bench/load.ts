/**
 * Closed-loop HTTP load: N connections, each sending the same POST as soon as the previous answer
 * arrived. wrk (C, one thread, epoll) when installed: it costs a few percent of one core where a JS
 * generator would take a whole one from the gateway on a small machine. autocannon otherwise.
 * Latencies are in microseconds.
 */
import { execFile, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface LoadSpec {
  readonly url: string;
  readonly body: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly connections: number;
  readonly seconds: number;
}

export interface LoadResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly requests: number;
  /** Socket errors, timeouts and non-2xx answers. */
  readonly errors: number;
  readonly seconds: number;
}

export interface LoadGenerator {
  readonly name: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

/** wrk if it runs, else autocannon. `prefer` forces one. */
export async function loadGenerator(dir: string, prefer?: 'wrk' | 'autocannon'): Promise<LoadGenerator> {
  if (prefer !== 'autocannon') {
    const version = await run('wrk', ['-v']).then(
      (r) => r.stdout + r.stderr,
      (err: { stdout?: string; stderr?: string }) => `${err.stdout ?? ''}${err.stderr ?? ''}`,
    );
    const match = /wrk (\S+)/.exec(version);
    if (match) return wrk(dir, `wrk ${match[1]}`);
    if (prefer === 'wrk') throw new Error('wrk is not installed (apt-get install -y wrk)');
  }
  return {
    name: 'autocannon (fallback: 1 ms latency resolution, takes CPU from the gateway)',
    run: runAutocannon,
  };
}

const long = (s: string) => {
  let eq = '=';
  while (s.includes(`]${eq}]`)) eq += '=';
  return `[${eq}[${s}]${eq}]`;
};

/**
 * The wrk script: one POST, its headers sent in the order `spec.headers` lists them (after Host,
 * before Content-Length), the same order on every run, as one client library sends them.
 *
 * wrk's own `wrk.headers` is a Lua table, and wrk writes it in the table's iteration order, which
 * changes from one wrk process to the next. Node's `req.headers` gets its hidden class from the
 * order its headers arrived in, so every round of a bench looked to the gateway like a new kind of
 * client: the code that read headers was deoptimized ("wrong map") at the start of the round and
 * optimized again inside it, and the CPU of that was counted as the round's (bench/README.md,
 * "One header order per client"). Overriding `wrk.format` keeps wrk's static request (built once,
 * no Lua per request).
 */
export function wrkScript(spec: Pick<LoadSpec, 'body' | 'headers'>): string {
  const lines = Object.entries(spec.headers)
    .map(([k, v]) => `  ${long(`${k}: ${v}`)},`)
    .join('\n');
  return `wrk.method = "POST"
wrk.body = ${long(spec.body)}
local lines = {
${lines}
}
wrk.format = function(method, path, headers, body)
  method = method or wrk.method
  path = path or wrk.path
  body = body or wrk.body
  local host = (headers or wrk.headers)["Host"] or wrk.host
  local s = { method .. " " .. path .. " HTTP/1.1", "Host: " .. host }
  for _, line in ipairs(lines) do s[#s + 1] = line end
  s[#s + 1] = "Content-Length: " .. #body
  s[#s + 1] = ""
  s[#s + 1] = body
  return table.concat(s, "\\r\\n")
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"us\\":%d,\\"errors\\":%d,\\"p50\\":%d,\\"p99\\":%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`;
}

function wrk(dir: string, name: string): LoadGenerator {
  let n = 0;
  return {
    name,
    async run(spec) {
      const script = join(dir, `wrk-${n++}.lua`);
      writeFileSync(script, wrkScript(spec));
      const args = [
        '-t1',
        `-c${spec.connections}`,
        `-d${Math.max(1, Math.round(spec.seconds))}s`,
        '--timeout',
        '10s',
        '-s',
        script,
        spec.url,
      ];
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let text = '';
        child.stdout.on('data', (c: Buffer) => (text += c.toString()));
        child.stderr.on('data', (c: Buffer) => (text += c.toString()));
        child.on('error', reject);
        child.on('exit', (code) =>
          code === 0 ? resolve(text) : reject(new Error(`wrk exited ${code}: ${text}`)),
        );
      });
      const line = /WRKJSON (.*)/.exec(out);
      if (!line) throw new Error(`wrk printed no summary:\n${out}`);
      const r = JSON.parse(line[1] as string) as {
        requests: number;
        us: number;
        errors: number;
        p50: number;
        p99: number;
      };
      const seconds = r.us / 1e6;
      return {
        rps: r.requests / seconds,
        p50: r.p50,
        p99: r.p99,
        requests: r.requests,
        errors: r.errors,
        seconds,
      };
    },
  };
}

async function runAutocannon(spec: LoadSpec): Promise<LoadResult> {
  const { default: autocannon } = await import('autocannon');
  const result = await autocannon({
    url: spec.url,
    method: 'POST',
    body: spec.body,
    headers: { ...spec.headers },
    connections: spec.connections,
    duration: spec.seconds,
    timeout: 10,
  });
  const requests = result.requests.total;
  return {
    rps: requests / spec.seconds,
    // autocannon records milliseconds.
    p50: result.latency.p50 * 1000,
    p99: result.latency.p99 * 1000,
    requests,
    errors: result.errors + result.timeouts + result.non2xx,
    seconds: spec.seconds,
  };
}
