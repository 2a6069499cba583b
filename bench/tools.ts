/**
 * A realistic tools/list catalogue for the origin: names `tool_000_search_issues`, a sentence of
 * description and an inputSchema with a few typed, described properties (about 600 bytes a tool,
 * close to what real MCP servers publish). Names are zero-padded so `tool_0*`..`tool_4*` match
 * exactly half of 1,000 tools.
 */

const VERBS = ['search', 'create', 'update', 'delete', 'list', 'get', 'archive', 'merge', 'sync', 'export'];
const NOUNS = ['issues', 'pull_requests', 'files', 'users', 'invoices', 'tickets', 'events', 'documents'];

export interface Tool {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly inputSchema: Record<string, unknown>;
}

export function toolName(i: number): string {
  const verb = VERBS[i % VERBS.length] as string;
  const noun = NOUNS[Math.floor(i / VERBS.length) % NOUNS.length] as string;
  return `tool_${String(i).padStart(3, '0')}_${verb}_${noun}`;
}

export function makeTools(count: number): Tool[] {
  const tools: Tool[] = [];
  for (let i = 0; i < count; i++) {
    const name = toolName(i);
    const [, , verb, ...rest] = name.split('_');
    const noun = rest.join(' ');
    tools.push({
      name,
      title: `${verb} ${noun}`,
      description:
        `${verb![0]!.toUpperCase()}${verb!.slice(1)} ${noun} in the workspace. Returns at most \`limit\` ` +
        `results ordered by last update; use \`cursor\` from a previous answer to continue. ` +
        `Requires the ${noun}:read scope.`,
      inputSchema: {
        type: 'object',
        properties: {
          query: { type: 'string', description: `Free-text filter applied to ${noun} titles and bodies.` },
          limit: { type: 'integer', minimum: 1, maximum: 100, default: 20, description: 'Page size.' },
          cursor: { type: 'string', description: 'Opaque pagination cursor.' },
          state: { type: 'string', enum: ['open', 'closed', 'all'], default: 'open' },
        },
        required: ['query'],
        additionalProperties: false,
      },
    });
  }
  return tools;
}

/**
 * Allow patterns that match half of the catalogue: five prefixes for 1,000 tools (the realistic
 * shape of an allowlist), the first half's exact names otherwise.
 */
export function halfAllowlist(count: number): string[] {
  if (count === 1000) return ['tool_0*', 'tool_1*', 'tool_2*', 'tool_3*', 'tool_4*'];
  return Array.from({ length: Math.floor(count / 2) }, (_, i) => toolName(i));
}

/** How many names the patterns allow (`prefix*` or an exact name), to check the gateway filtered. */
export function countAllowed(names: readonly string[], patterns: readonly string[]): number {
  const exact = new Set(patterns.filter((p) => !p.endsWith('*')));
  const prefixes = patterns.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return names.filter((n) => exact.has(n) || prefixes.some((p) => n.startsWith(p))).length;
}
