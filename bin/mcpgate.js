#!/usr/bin/env node
// Entry point. In a checkout the TypeScript sources run directly (Node >= 22.18 strips types);
// a published package ships the bundle built by `npm run build` instead.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const bundle = new URL('../dist/mcpgate.mjs', import.meta.url);
await import(existsSync(source) ? source.href : bundle.href);
