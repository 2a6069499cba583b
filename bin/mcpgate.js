#!/usr/bin/env node
// Entry point. In a checkout the TypeScript sources run directly (Node >= 22.18 strips types);
// a published package ships the bundle built by `npm run build` instead.
import { existsSync } from 'node:fs';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  // One line, before anything that older Nodes cannot load (they would print a stack trace).
  console.error(
    `mcpgate needs Node >= 22.18 (this is ${process.version}): install a newer Node (https://nodejs.org), ` +
      `or in a checkout run "npm ci" (it brings Node 24 into node_modules/.bin) and start it with "npx mcpgate".`,
  );
  process.exit(1);
}
const source = new URL('../src/cli/main.ts', import.meta.url);
const bundle = new URL('../dist/mcpgate.mjs', import.meta.url);
await import(existsSync(source) ? source.href : bundle.href);
