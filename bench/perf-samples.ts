/**
 * Reads `perf script` output of call-graph samples (`perf record -g`, JIT frames named by Node's
 * `--perf-basic-prof`) and says where each sample's time belongs, per request:
 *
 * - by owner: the innermost JavaScript function on the stack that is not a V8 builtin. A builtin
 *   (an inline cache, the write barrier, a Map lookup), a runtime or C++ function (JSON.parse, a
 *   hash) and the kernel below it (a write's syscall) are charged to the JavaScript that called
 *   them, so a function's row is what calling it costs, not only its own instructions. A stack with
 *   no JavaScript frame is `[kernel]` (a sample in the kernel, such as the event loop's epoll) or
 *   `[native] <leaf>`.
 * - inclusive: for each function whose file's path (without the checkout's) starts with
 *   `inclusiveOf` (the gateway's `src/`), the samples with it anywhere on the stack, once per
 *   sample.
 */

export interface Split {
  readonly samples: number;
  readonly byOwner: ReadonlyMap<string, number>;
  readonly inclusive: ReadonlyMap<string, number>;
}

/** A frame line of `perf script`: tab, address, symbol+offset, (object). */
const FRAME = /^\s+[0-9a-f]+ (.*?)(?:\+0x[0-9a-f]+)? \(([^)]*)\)\s*$/;

export function splitSamples(text: string, strip: readonly string[], inclusiveOf: string): Split {
  const byOwner = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let samples = 0;
  let frames: { name: string; object: string }[] = [];
  const flush = (): void => {
    if (frames.length === 0) return;
    samples++;
    const owner = frames.find((f) => isJavaScript(f.name));
    const key =
      owner !== undefined
        ? owner.name
        : frames[0]!.object.includes('kernel')
          ? '[kernel]'
          : `[native] ${frames[0]!.name}`;
    byOwner.set(key, (byOwner.get(key) ?? 0) + 1);
    const seen = new Set<string>();
    for (const f of frames) {
      if (!isJavaScript(f.name) || !inFiles(f.name, inclusiveOf) || seen.has(f.name)) continue;
      seen.add(f.name);
      inclusive.set(f.name, (inclusive.get(f.name) ?? 0) + 1);
    }
    frames = [];
  };
  for (const line of text.split('\n')) {
    const frame = FRAME.exec(line);
    if (frame === null) {
      flush();
      continue;
    }
    frames.push({ name: tidy(frame[1]!, strip), object: frame[2]! });
  }
  flush();
  return { samples, byOwner, inclusive };
}

/** Whether a JavaScript frame's file path starts with `prefix` (the path follows the name's space). */
export function inFiles(name: string, prefix: string): boolean {
  return name.includes(` ${prefix}`);
}

/** A JIT frame of JavaScript (`JS:*'name file:line:col`), not a builtin's or wasm's. */
function isJavaScript(name: string): boolean {
  return name.startsWith('JS:') && !name.includes('Builtin') && !name.includes('wasm');
}

/** The name without the checkouts' paths (so two checkouts' rows match) or the `file://` scheme. */
function tidy(name: string, strip: readonly string[]): string {
  let out = name.replaceAll('file://', '');
  for (const path of strip) out = out.replaceAll(path, '');
  return out;
}
