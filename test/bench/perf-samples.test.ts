/**
 * bench/perf-samples.ts: a sample's time goes to the innermost JavaScript function on its stack
 * (builtins, C++ and kernel frames below it are what that function called), and each gateway
 * function counts once per sample for its inclusive time. The text is `perf script` output as
 * Debian's perf prints it for a Node process run with --perf-basic-prof.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { splitSamples } from '../../bench/perf-samples.ts';

const PERF_SCRIPT = `MainThread  4048 19591.915327:     500250 cpu-clock: 
\t         1619e64 uv__stream_io+0x94 (/opt/node/bin/node)
\t         162278a uv__io_poll+0x41a (/opt/node/bin/node)

MainThread  4048 19591.915828:     500250 cpu-clock: 
\tffffffff8164d459 kfree+0x69 ([kernel.kallsyms])
\tffffffff82071d53 tcp_ack+0x733 ([kernel.kallsyms])

MainThread  4048 19591.916968:     500250 cpu-clock: 
\t    7fcb3ab6272a JS:*'readBody file:///co/src/pipeline/read-body.ts:29:27+0x72a (/tmp/perf-4048.map)
\t    7fcb3aad0ff6 JS:*'run file:///co/src/pipeline/handler.ts:155:21+0x3b76 (/tmp/perf-4048.map)
\t    7fcb3aaa87ab JS:*'parserOnIncoming node:_http_server:1167:26+0x116b (/tmp/perf-4048.map)
\t         163221c Builtins_JSEntryTrampoline+0x5c (/opt/node/bin/node)

MainThread  4048 19591.917466:     500250 cpu-clock: 
\t         163aa10 Builtins_KeyedLoadIC_Megamorphic+0x50 (/opt/node/bin/node)
\t          a22df1 v8::internal::(anonymous namespace)::Invoke+0x161 (/opt/node/bin/node)
\t    7fcb3aad0ff6 JS:*'run file:///co/src/pipeline/handler.ts:155:21+0x3b76 (/tmp/perf-4048.map)
\t    7fcb3aaa0000 JS:*'run file:///co/src/pipeline/handler.ts:155:21+0x10 (/tmp/perf-4048.map)

MainThread  4048 19591.917965:     500250 cpu-clock: 
\tffffffff81e87e4f skb_release_data+0x15f ([kernel.kallsyms])
\t    3ad5bb3386a0 JS:wasm-function[20]-20-turbofan+0x9060 (/tmp/perf-4048.map)
\t    7fcb3aaf0369 JS:*'readMore /co/node_modules/undici/lib/dispatcher/client-h1.js:307:12+0x5a9 (/tmp/perf-4048.map)

MainThread  4048 19591.918816:     500250 cpu-clock: 
\t           95073 unlink_chunk.constprop.0+0x13 (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t               1 [unknown] ([unknown])
`;

test('each sample goes to the innermost JavaScript function; a gateway function counts once per sample', () => {
  const split = splitSamples(PERF_SCRIPT, ['/co/'], 'src/');
  assert.equal(split.samples, 6);
  assert.deepEqual(Object.fromEntries(split.byOwner), {
    '[native] uv__stream_io': 1,
    '[kernel]': 1,
    "JS:*'readBody src/pipeline/read-body.ts:29:27": 1,
    // The megamorphic load and the C++ frame under it are what run called.
    "JS:*'run src/pipeline/handler.ts:155:21": 1,
    // A wasm frame is not the owner: the JavaScript that called into it is.
    "JS:*'readMore node_modules/undici/lib/dispatcher/client-h1.js:307:12": 1,
    '[native] unlink_chunk.constprop.0': 1,
  });
  // `run` is on two samples' stacks (twice on one, counted once); Node's own functions are not
  // the gateway's.
  assert.deepEqual(Object.fromEntries(split.inclusive), {
    "JS:*'readBody src/pipeline/read-body.ts:29:27": 1,
    "JS:*'run src/pipeline/handler.ts:155:21": 2,
  });
});
